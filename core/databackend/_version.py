"""The one source of the core's version numbers (read by the build backend and the code)."""

__all__ = ["PLUGIN_API_VERSION", "__version__"]

__version__ = "0.2.0"

#: The plugin API (``databackend.pluginapi``, the hooks) this core provides: ``MAJOR.MINOR``. A
#: plugin declaring ``DATABACKEND_PLUGIN_API = "M.m"`` loads when ``M`` equals ``MAJOR`` and
#: ``m <= MINOR``. See CHANGELOG.md.
PLUGIN_API_VERSION = "1.1"
