"""Which code a model given by import path may run: the import-path rule of ``--model``.

An import path must name an estimator *class* of scikit-learn, River or an installed
distribution built on them: the package is checked before it is imported (:func:`may_import`)
and the class before anything is called (:func:`load_estimator_class`), so a config file cannot
make rtml run a command (``os:system``), a function or an arbitrary module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys

from rtml_cli.errors import ModelError, suggest

_IMPORT_PATH_HELP = "'package.module:EstimatorClass', e.g. sklearn.linear_model:SGDClassifier"


def raised(exc: BaseException) -> tuple[str, str]:
    """What user code did, as (verb, detail) for a message: ``("raised", ": TypeError: text")``
    or ``("called sys.exit(3)", "")``."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})", ""
    return "raised", f": {type(exc).__name__}: {exc}"


def split_import_path(text: str) -> tuple[str, str]:
    """``'pkg.mod:Class'`` → ``('pkg.mod', 'Class')``; anything else is a :class:`ModelError`.

    The module part is dotted Python names, the attribute one name: nothing else can be looked up.
    """
    mod, sep, attr = text.partition(":")
    if (
        not sep
        or not attr.isidentifier()
        or not mod
        or not all(part.isidentifier() for part in mod.split("."))
    ):
        raise ModelError(
            f"model estimator {text!r} is not an import path: it must look like "
            f"{_IMPORT_PATH_HELP}, or 'path/to/model.py:make_model' for a factory file."
        )
    return mod, attr


def estimator_bases() -> tuple[type, ...]:
    """The classes an estimator given by import path must derive from.

    scikit-learn's ``BaseEstimator``, and River's ``river.base.Estimator`` when River is already
    imported (a River estimator class's own module imports it, so rtml never has to import River
    to check one).
    """
    from sklearn.base import BaseEstimator

    bases: list[type] = [BaseEstimator]
    river_base = sys.modules.get("river.base")
    if river_base is not None:
        river_estimator = getattr(river_base, "Estimator", None)
        if isinstance(river_estimator, type):
            bases.append(river_estimator)
    return tuple(bases)


#: Distributions whose modules an import path may import, with any that declare one of them
#: as a requirement (an extra counts: LightGBM and XGBoost declare scikit-learn that way).
_ML_DISTRIBUTIONS = ("scikit-learn", "sklearn", "river")


def may_import(module: str) -> bool:
    """Whether importing ``module`` for an import path is allowed (before it is imported).

    Importing runs a module's top-level code, so an import path (which may come from an
    ``rtml.toml`` lying beside a downloaded table) may only reach modules already imported or
    belonging to scikit-learn, River, or an installed distribution that requires one of them.
    """
    if module in sys.modules:
        return True
    top = module.split(".")[0]
    if top in ("sklearn", "river"):
        return True
    import importlib.metadata as md
    import importlib.util

    try:
        if importlib.util.find_spec(top) is None:
            return True  # not installed: the import fails with its own clear message
    except (ImportError, ValueError):
        return True

    pattern = re.compile(rf"^\s*({'|'.join(_ML_DISTRIBUTIONS)})\b", re.IGNORECASE)
    for dist in md.packages_distributions().get(top, []):
        if dist.lower() in _ML_DISTRIBUTIONS:
            return True
        if any(pattern.match(req) for req in md.requires(dist) or []):
            return True
    return False


def load_estimator_class(text: str) -> type:
    """Import ``module`` of ``module:Name`` (the user named it) and return ``Name`` only if it is
    an estimator class. Nothing found there is called, instantiated or inspected before that."""
    mod, attr = split_import_path(text)
    if not may_import(mod):
        raise ModelError(
            f"model estimator {text!r}: module '{mod}' is not part of scikit-learn, River or an "
            "installed package built on them, and importing it would run its code. An import "
            "path names an estimator class of such a package; for your own code use a factory "
            "file, --model path/to/model.py:make_model (a file you name is code you choose to run)."
        )
    # `python -m rtml_cli` puts the working directory first on sys.path: a module lying there
    # (beside a downloaded table and its rtml.toml) would run as it is imported. An import path
    # names installed code; the user's own code comes as a factory file, which is announced.
    cwd = os.path.realpath(os.getcwd())
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if os.path.realpath(p or ".") != cwd]
    try:
        module = importlib.import_module(mod)
    except ImportError as exc:
        hint = "Check the spelling and that it is installed."
        top = os.path.join(cwd, mod.split(".")[0])
        if os.path.exists(top + ".py") or os.path.isdir(top):
            hint = (
                "An import path names an installed module, never one in the working directory; "
                "for your own code use a factory file, --model path/to/model.py:make_model."
            )
        raise ModelError(
            f"model estimator {text!r}: cannot import module '{mod}' ({exc}). {hint}"
        ) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        verb, detail = raised(exc)
        raise ModelError(
            f"model estimator {text!r}: module '{mod}' {verb} while importing{detail}."
        ) from None
    finally:
        sys.path[:] = saved
    obj = getattr(module, attr, None)
    if obj is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ModelError(
            f"module '{mod}' has no '{attr}'.{suggest(attr, names)} Check the estimator name."
        )
    if not (isinstance(obj, type) and issubclass(obj, estimator_bases())):
        what = "a class" if isinstance(obj, type) else f"a {type(obj).__name__}, not a class"
        raise ModelError(
            f"model estimator {text!r} is not an estimator class ({what}). An import path must "
            "name a scikit-learn estimator class (a subclass of sklearn.base.BaseEstimator) or a "
            "River one (river.base.Estimator), "
            f"{_IMPORT_PATH_HELP}; rtml calls nothing else. For custom code use a factory file, "
            "--model path/to/model.py:make_model."
        )
    return obj
