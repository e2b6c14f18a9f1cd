from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "Benchmark data, failures, judging and labels"

    def ready(self) -> None:
        from annotation.changes import connect_signals

        connect_signals()
