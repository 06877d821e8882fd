"""Deploy tests read settings from a clean environment, whatever an integration session set."""

from tests.isolation import clean_settings_env

__all__ = ["clean_settings_env"]
