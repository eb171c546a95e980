"""Turn dashboard specs (model.py) into Grafana JSON with grafana-foundation-sdk."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from .alert_rules import describe, threshold
from .model import NO_THRESHOLD, AlertStep, Dashboard, Logs, Panel, Stat, Step

#: Provisioned datasource uid (provisioning/datasources/prometheus.yml).
DATASOURCE_UID = "prometheus"
#: The log store's provisioned datasource (provisioning/datasources/stores.yml): type, uid.
LOGS_DATASOURCE_TYPE = "victoriametrics-logs-datasource"
LOGS_DATASOURCE_UID = "victorialogs"


def _sdk() -> SimpleNamespace:
    """Import the SDK lazily: panel_queries() must work without it."""
    try:
        from grafana_foundation_sdk.builders import common as common_b
        from grafana_foundation_sdk.builders import dashboard as dashboard_b
        from grafana_foundation_sdk.builders import logs, prometheus, stat, timeseries
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.models import common as common_m
        from grafana_foundation_sdk.models import dashboard as dashboard_m
    except ImportError as exc:
        raise SystemExit(
            "build_dashboards.py needs grafana-foundation-sdk: "
            "pip install 'grafana-foundation-sdk==1769699379!11.6.0' "
            "(or pip install -e '.[dev]')"
        ) from exc
    return SimpleNamespace(
        common_b=common_b,
        dashboard_b=dashboard_b,
        logs=logs,
        prometheus=prometheus,
        stat=stat,
        timeseries=timeseries,
        JSONEncoder=JSONEncoder,
        common_m=common_m,
        dashboard_m=dashboard_m,
    )


class _LogsQuery:
    """A VictoriaLogs plugin target (the SDK has no builder for this plugin's queries):
    ``expr`` is LogsQL, ``queryType: instant`` asks /select/logsql/query for the records."""

    def __init__(self, ref_id: str, expr: str) -> None:
        self.ref_id = ref_id
        self.expr = expr

    def build(self) -> _LogsQuery:
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "datasource": {"type": LOGS_DATASOURCE_TYPE, "uid": LOGS_DATASOURCE_UID},
            "editorMode": "code",
            "expr": self.expr,
            "queryType": "instant",
            "refId": self.ref_id,
        }


class _Builder:
    """Draws specs with the SDK, numbering rows and panels in the order drawn."""

    def __init__(self, sdk: SimpleNamespace) -> None:
        self.sdk = sdk
        self.ds = sdk.dashboard_m.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
        self._next_id = 1

    def _id(self) -> int:
        panel_id = self._next_id
        self._next_id += 1
        return panel_id

    def _targets(
        self, panel: Any, queries: Sequence[tuple[str, str]], exemplars: bool = False
    ) -> Any:
        for index, (expr, legend) in enumerate(queries):
            target = (
                self.sdk.prometheus.Dataquery()
                .expr(expr)
                .ref_id(chr(ord("A") + index))
                .datasource(self.ds)
            )
            if legend:
                target = target.legend_format(legend)
            if exemplars:
                target = target.exemplar(True)
            panel = panel.with_target(target)
        return panel

    def thresholds(self, *steps: tuple[float | None, str]) -> Any:
        m = self.sdk.dashboard_m
        return (
            self.sdk.dashboard_b.ThresholdsConfig()
            .mode(m.ThresholdsMode.ABSOLUTE)
            .steps([m.Threshold(value=value, color=color) for value, color in steps])
        )

    @staticmethod
    def _why_no_thresholds(
        title: str,
        description: str,
        thresholds: Sequence[tuple[float | None, str]],
        no_thresholds: str,
    ) -> str:
        """The description; without thresholds beyond the base, it ends with the reason."""
        if len(thresholds) > 1 and not no_thresholds:
            return description
        if len(thresholds) <= 1 and no_thresholds:
            return f"{description} {NO_THRESHOLD}{no_thresholds}"
        raise ValueError(
            f"panel {title!r}: give thresholds beyond the base colour, or no_thresholds= "
            "with the reason there are none (not both)"
        )

    def panel(self, spec: Panel) -> Any:
        """The SDK panel for a spec; alert thresholds (steps, description) from the rules."""
        description = describe(spec.description)
        if isinstance(spec, Logs):
            return self.logs(
                spec.title, spec.query, description, span=spec.span, height=spec.height
            )
        steps = tuple(_step(step, spec.unit) for step in spec.thresholds)
        if isinstance(spec, Stat):
            return self.stat(
                spec.title,
                spec.unit,
                spec.query,
                description=description,
                thresholds=steps,
                no_thresholds=spec.no_thresholds,
                mappings=spec.mappings,
                legend=spec.legend,
                span=spec.span,
                height=spec.height,
            )
        return self.timeseries(
            spec.title,
            spec.unit,
            spec.queries,
            description=description,
            thresholds=steps,
            no_thresholds=spec.no_thresholds,
            min_value=spec.min_value,
            max_value=spec.max_value,
            stacked=spec.stacked,
            exemplars=spec.exemplars,
            span=spec.span,
            height=spec.height,
        )

    def logs(
        self, title: str, query: str, description: str, *, span: int = 24, height: int = 10
    ) -> Any:
        """The newest records first, each with its fields (trace_id links to Jaeger:
        the datasource's derived field)."""
        sdk = self.sdk
        ds = sdk.dashboard_m.DataSourceRef(type_val=LOGS_DATASOURCE_TYPE, uid=LOGS_DATASOURCE_UID)
        return (
            sdk.logs.Panel()
            .id(self._id())
            .title(title)
            .description(description)
            .datasource(ds)
            .span(span)
            .height(height)
            .show_time(True)
            .wrap_log_message(True)
            .enable_log_details(True)
            .dedup_strategy(sdk.common_m.LogsDedupStrategy.NONE)
            .sort_order(sdk.common_m.LogsSortOrder.DESCENDING)
            .with_target(_LogsQuery("A", query))
        )

    def row(self, title: str) -> Any:
        return self.sdk.dashboard_b.Row(title).id(self._id())

    def timeseries(
        self,
        title: str,
        unit: str,
        queries: Sequence[tuple[str, str]],
        *,
        description: str,
        thresholds: Sequence[tuple[float | None, str]] = (),
        no_thresholds: str = "",
        min_value: float | None = None,
        max_value: float | None = None,
        stacked: bool = False,
        exemplars: bool = False,
        span: int = 12,
        height: int = 8,
    ) -> Any:
        sdk = self.sdk
        description = self._why_no_thresholds(title, description, thresholds, no_thresholds)
        if exemplars and not all("_bucket{" in expr for expr, _ in queries):
            # Prometheus keeps exemplars on the series scraped, not on recording rules.
            raise ValueError(
                f"panel {title!r}: exemplars need every query over a histogram's _bucket "
                "series (quantile(...)), not a recording rule"
            )
        panel = (
            sdk.timeseries.Panel()
            .id(self._id())
            .title(title)
            .description(description)
            .datasource(self.ds)
            .unit(unit)
            .span(span)
            .height(height)
            .fill_opacity(10)
            .legend(
                sdk.common_b.VizLegendOptions()
                .display_mode(sdk.common_m.LegendDisplayMode.LIST)
                .placement(sdk.common_m.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
        )
        if thresholds:
            panel = panel.thresholds(self.thresholds(*thresholds)).thresholds_style(
                sdk.common_b.GraphThresholdsStyleConfig().mode(
                    sdk.common_m.GraphThresholdsStyleMode.DASHED
                )
            )
        if min_value is not None:
            panel = panel.min(min_value)
        if max_value is not None:
            panel = panel.max(max_value)
        if stacked:
            panel = panel.stacking(
                sdk.common_b.StackingConfig().mode(sdk.common_m.StackingMode.NORMAL)
            )
        return self._targets(panel, queries, exemplars)

    def stat(
        self,
        title: str,
        unit: str,
        query: str,
        *,
        description: str,
        thresholds: Sequence[tuple[float | None, str]] = (),
        no_thresholds: str = "",
        mappings: Mapping[str, tuple[str, str]] | None = None,
        legend: str = "",
        span: int = 6,
        height: int = 4,
    ) -> Any:
        sdk = self.sdk
        description = self._why_no_thresholds(title, description, thresholds, no_thresholds)
        panel = (
            sdk.stat.Panel()
            .id(self._id())
            .title(title)
            .description(description)
            .datasource(self.ds)
            .unit(unit)
            .span(span)
            .height(height)
            .graph_mode(sdk.common_m.BigValueGraphMode.AREA)
            .color_mode(sdk.common_m.BigValueColorMode.VALUE)
            .reduce_options(sdk.common_b.ReduceDataOptions().calcs(["lastNotNull"]))
            .thresholds(self.thresholds(*(thresholds or ((None, "green"),))))
        )
        if mappings:
            m = sdk.dashboard_m
            panel = panel.mappings(
                [
                    m.ValueMap(
                        options={
                            value: m.ValueMappingResult(text=text, color=color, index=index)
                            for index, (value, (text, color)) in enumerate(mappings.items())
                        }
                    )
                ]
            )
        return self._targets(panel, [(query, legend)])

    def dashboard(
        self,
        uid: str,
        title: str,
        description: str,
        tags: Iterable[str],
        time_from: str = "now-1h",
    ) -> Any:
        sdk = self.sdk
        m = sdk.dashboard_m
        def variable(name: str, label: str, description: str, query: str) -> Any:
            """A multi-value query variable whose "All" is one regex, not an alternation."""
            return (
                sdk.dashboard_b.QueryVariable(name)
                .label(label)
                .description(description)
                .datasource(self.ds)
                .query(query)
                .refresh(m.VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(m.VariableSort.ALPHABETICAL_ASC)
                .multi(True)
                .include_all(True)
                .all_value(".*")
            )

        # Any tdd_* series: every instrumented service has some.
        service = variable(
            "service",
            "Service",
            "The app's OTel service.name: the `job` label of its metrics.",
            'label_values({__name__=~"tdd_.+"}, job)',
        )
        instance = variable(
            "instance",
            "Instance",
            "service.instance.id: one process of the service.",
            'label_values({__name__=~"tdd_.+", job=~"$service"}, instance)',
        )
        return (
            sdk.dashboard_b.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(["otel-tdd", *tags])
            .editable()
            .time(time_from, "now")
            .refresh("30s")
            .timezone("browser")
            .tooltip(m.DashboardCursorSync.CROSSHAIR)
            .with_variable(service)
            .with_variable(instance)
            .link(
                sdk.dashboard_b.DashboardLink("otel-tdd dashboards")
                .type(m.DashboardLinkType.DASHBOARDS)
                .tags(["otel-tdd"])
                .as_dropdown(True)
                .include_vars(True)
                .keep_time(True)
            )
        )


def _step(step: Step, unit: str) -> tuple[float | None, str]:
    """A (value, colour) step; an AlertStep takes its value from the alert rule."""
    if not isinstance(step, AlertStep):
        return step
    value = threshold(step.alert) * step.scale
    # Byte counts are whole numbers (2147483648, not 2147483648.0).
    return (int(value) if unit == "bytes" and value.is_integer() else value), step.color


def render(b: _Builder, spec: Dashboard) -> Any:
    """The SDK dashboard for a spec: its header, then each row and its panels in order."""
    d = b.dashboard(spec.uid, spec.title, spec.description, spec.tags, spec.time_from)
    for row in spec.rows:
        d = d.with_row(b.row(row.title))
        for panel in row.panels:
            d = d.with_panel(b.panel(panel))
    return d


def to_json(spec: Dashboard) -> str:
    """A spec as the dashboard JSON text the files hold (sorted keys, newline at the end)."""
    sdk = _sdk()
    dashboard = render(_Builder(sdk), spec).build()
    return str(sdk.JSONEncoder(sort_keys=True, indent=2).encode(dashboard)) + "\n"
