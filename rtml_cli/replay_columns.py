"""Column names of replay messages and of the replay loop's working columns.

Every message frame starts with :data:`KIND`, :data:`~rtml_cli.io.EVENT_ID` and :data:`TIME`
(docs/semantics.md, "Replay messages"). The working columns exist only inside the replay loop
and are never shown to a sink, but a table column of one of these names would clash with them,
so :func:`rtml_cli.replay_source.check_reserved_columns` refuses it.
"""

from __future__ import annotations

#: Message field: "event" or "label".
KIND = "rtml_kind"
#: Message field: when the message arrives, in event time (Datetime("us")).
TIME = "rtml_time"
#: Working column: the message already encoded as one flat JSON object.
JSON = "rtml_json"
#: Working column: when a row's label message arrives. It is the label time, but never before
#: the row's event message, which disorder may have delayed.
LABEL_ARRIVAL = "rtml_label_arrival"
#: Working columns: the event id and the event time as text, computed once per batch and shared
#: by the event and the label message.
ID_TEXT = "rtml_id_text"
TIME_TEXT = "rtml_time_text"
#: The working columns a table column may not be named like (unless ignored).
WORKING_COLUMNS = (JSON, LABEL_ARRIVAL, ID_TEXT, TIME_TEXT)
