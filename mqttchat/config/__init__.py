"""The user's configuration, in the config directory: connection profiles (``profiles.toml``), UI preferences and
decoder rules (``settings.toml``) and saved publish templates (``templates.toml``).

One module per job: :mod:`~mqttchat.config.paths` (where the files are), :mod:`~mqttchat.config.toml` (the TOML
layer the broker's files use too: reading, conversions, errors with file and line, atomic writes; with
:mod:`~mqttchat.config.keylines` for the lines), :mod:`~mqttchat.config.checks`, :mod:`~mqttchat.config.profiles`,
:mod:`~mqttchat.config.settings`, :mod:`~mqttchat.config.decoder_rules` and :mod:`~mqttchat.config.templates`.

The names below are loaded from their module when first used: importing one part (the broker and the password
command import only the TOML layer; the explorer only the decoder rules) loads neither the others nor what they
import (the profiles import the client's options).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqttchat.config.paths import (
        INSTALL_ID_FILE,
        PROFILES_FILE,
        SETTINGS_FILE,
        TEMPLATES_FILE,
        config_dir,
        data_dir,
        install_id,
        settings_path,
        templates_path,
    )
    from mqttchat.config.profiles import (
        DEFAULT_PROFILE,
        PROFILE_KEYS,
        TLS_KEYS,
        WILL_KEYS,
        Profile,
        ProfileError,
        ProfileStore,
        expand_env,
    )
    from mqttchat.config.settings import SETTINGS_KEYS, AppSettings, load_settings, save_settings
    from mqttchat.config.templates import (
        TEMPLATE_KEYS,
        PublishTemplate,
        delete_template,
        load_templates,
        save_template,
        template_name_problem,
    )
    from mqttchat.config.toml import ConfigError

__all__ = [
    "DEFAULT_PROFILE",
    "INSTALL_ID_FILE",
    "PROFILES_FILE",
    "PROFILE_KEYS",
    "SETTINGS_FILE",
    "SETTINGS_KEYS",
    "TEMPLATES_FILE",
    "TEMPLATE_KEYS",
    "TLS_KEYS",
    "WILL_KEYS",
    "AppSettings",
    "ConfigError",
    "Profile",
    "ProfileError",
    "ProfileStore",
    "PublishTemplate",
    "config_dir",
    "data_dir",
    "delete_template",
    "expand_env",
    "install_id",
    "load_settings",
    "load_templates",
    "save_settings",
    "save_template",
    "settings_path",
    "template_name_problem",
    "templates_path",
]

#: The module of each name above.
_MODULES: dict[str, str] = {
    **dict.fromkeys(
        (
            "INSTALL_ID_FILE",
            "PROFILES_FILE",
            "SETTINGS_FILE",
            "TEMPLATES_FILE",
            "config_dir",
            "data_dir",
            "install_id",
            "settings_path",
            "templates_path",
        ),
        "paths",
    ),
    **dict.fromkeys(
        (
            "DEFAULT_PROFILE",
            "PROFILE_KEYS",
            "TLS_KEYS",
            "WILL_KEYS",
            "Profile",
            "ProfileError",
            "ProfileStore",
            "expand_env",
        ),
        "profiles",
    ),
    **dict.fromkeys(("SETTINGS_KEYS", "AppSettings", "load_settings", "save_settings"), "settings"),
    **dict.fromkeys(
        (
            "TEMPLATE_KEYS",
            "PublishTemplate",
            "delete_template",
            "load_templates",
            "save_template",
            "template_name_problem",
        ),
        "templates",
    ),
    "ConfigError": "toml",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
