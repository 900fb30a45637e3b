"""Registers asteroid-tdanet's models with Asteroid whenever ``asteroid.models`` is imported.

Installing asteroid-tdanet (wheel or editable) puts two start-up files in site-packages:
``asteroid_tdanet_hook.start`` (PEP 829 entry point ``asteroid_tdanet_hook:install``, read by
Python 3.15 and later) and ``asteroid_tdanet_hook.pth`` (one import line, for older Pythons; a
matching ``.start`` file makes 3.15+ skip it). Either way :func:`install` runs at start-up. It
adds a finder to ``sys.meta_path`` which does nothing until some code imports ``asteroid.models``
(Asteroid's CLIs, ESPnet's ``separator: asteroid``, a user's script): right after that module has
run, it imports ``asteroid_tdanet``, whose import registers ``TDANet``, ``TDANetLarge`` and
``TDANetBest`` (the authors' released files), and nothing else. So
``asteroid.models.get("TDANet")`` and ``BaseModel.from_pretrained("tdanet.pth")`` work without
importing ``asteroid_tdanet`` first.

This module runs in every Python process of the environment, so it imports nothing but ``sys`` and
``os`` (both already loaded by then) at start-up, and it never raises or prints there: a checkout
that was moved or deleted after an editable install, or a removed package, is silently skipped.
Setting the environment variable ``ASTEROID_TDANET_NO_HOOK=1`` turns it off (so does ``python
-S``); ``import asteroid_tdanet`` still registers the models.
"""

import os
import sys

TARGET = "asteroid.models"
PLUGIN = "asteroid_tdanet"
_MARK = "_asteroid_tdanet_hook"
# Set to anything but "" or "0": install() does nothing.
OPT_OUT = "ASTEROID_TDANET_NO_HOOK"


def register_plugin() -> None:
    """Import ``asteroid_tdanet`` (which registers its models), or re-register it.

    Never raises: a broken plugin must not break ``import asteroid``; it warns instead. A
    plugin that is not there at all (uninstalled, checkout deleted) is skipped silently.
    """
    plugin = sys.modules.get(PLUGIN)
    try:
        if plugin is None:
            __import__(PLUGIN)  # its import registers the models
        elif hasattr(plugin, "register_models"):
            plugin.register_models()  # asteroid.models was (re)created after the plugin
        # else: the plugin is being imported right now and imported asteroid.models itself; it
        # registers its models when its own import finishes.
    except ModuleNotFoundError as err:
        if err.name != PLUGIN:  # the plugin is there but one of its imports is missing
            _warn(err)
    except Exception as err:  # noqa: BLE001 (any failure becomes a warning, see above)
        _warn(err)


def _warn(err: Exception) -> None:
    import warnings

    warnings.warn(
        f"asteroid-tdanet could not register TDANet with asteroid.models ({err!r}); "
        "import asteroid_tdanet to see the full error",
        RuntimeWarning,
        stacklevel=3,
    )


class _RegisteringLoader:
    """Runs the real loader of ``asteroid.models``, then registers the plugin."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        # Asteroid's own loader from here on (reloads, inspect.getsource, resource readers).
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        register_plugin()

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class PostImportFinder:
    """``sys.meta_path`` entry that wraps the loader of ``asteroid.models`` (and nothing else)."""

    _asteroid_tdanet_hook = True

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if getattr(finder, _MARK, False) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _RegisteringLoader(spec.loader)
            return spec
        return None


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once, however many copies are installed).

    The start-up entry point: does nothing when ``ASTEROID_TDANET_NO_HOOK`` is set, and never
    raises (Python would print the error at every start-up).
    """
    try:
        if os.environ.get(OPT_OUT, "") not in ("", "0"):
            return
        if any(getattr(finder, _MARK, False) for finder in sys.meta_path):
            return
        sys.meta_path.insert(0, PostImportFinder())
        if TARGET in sys.modules:  # installed late (site.addsitedir at run time)
            register_plugin()
    except Exception:  # noqa: BLE001, S110 (silent by design, see above)
        pass
