from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Meterline core"

    def ready(self) -> None:
        from core import deferred  # noqa: F401  (connects its request_finished receiver)
