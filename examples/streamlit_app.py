"""The seed's Streamlit app: epics, tasks and focus sessions, with no telemetry setup in it.

Run it under the wrapper; it configures everything before Streamlit starts:

    otel-tdd run --service-name tdd-streamlit --ops-port 9464 \\
        streamlit run examples/streamlit_app.py --server.headless true \\
        --browser.gatherUsageStats false

Add ``--endpoint http://127.0.0.1:4318`` to send all three signals to a Collector.
Then every rerun (each click) is a span named ``rerun streamlit_app`` with the
Streamlit session id as ``session_id`` baggage; the log records below carry its
trace id as ``correlation_id``; the metrics are the seed's catalog; health is on
the ops server (``/health/ready``), since Streamlit has no custom routes.

The domain services are the ones in ``tdd_app.py`` (same directory, which
Streamlit puts on ``sys.path``). The code is what the seed's "Streamlit
Integration" shows, import path ``monitoring.`` -> ``otel_tdd.``, minus what the
wrapper does instead: no health query parameter (``st.experimental_get_query_params``
is gone from Streamlit, and a probe should not run the app's script), and no
``signal.signal`` in the script (it runs in a non-main thread, where Python
refuses it; the wrapper's SIGTERM handling and Streamlit's own flush on exit).
"""

from __future__ import annotations

import random

import streamlit as st
from tdd_app import App

from otel_tdd.structured_logging import StructuredLogger, correlation_context

logger = StructuredLogger("streamlit_app")


@st.cache_resource
def get_app() -> App:
    """One database and one set of services for every browser session."""
    return App()


@logger.performance_tracked
def render_page(app: App, page_name: str) -> None:
    with correlation_context(st.session_state.user_id, f"page_{page_name}"):
        logger.info(f"Rendering page: {page_name}")
        st.title("TDD board")
        name = st.text_input("Epic name", value="Checkout flow", key="epic_name")
        create, complete, focus, fail = st.columns(4)
        if create.button("Create epic", key="create_epic"):
            epic_id = app.epics.create_epic({"name": name, "type": "web", "tasks": [1, 2]})
            for title in ("Write the failing test", "Make it pass"):
                app.tasks.add_task(epic_id, title)
            st.success(f"Created epic {epic_id}: {name}")
        if complete.button("Complete next task", key="complete_task"):
            rows = app.db.execute("next_task", "SELECT id FROM tasks WHERE done = 0 LIMIT 1")
            if rows:
                app.tasks.complete_task(int(rows[0][0]))
                st.success(f"Completed task {rows[0][0]}")
            else:
                st.info("No open task")
        if focus.button("Log a focus session", key="focus_session"):
            rows = app.db.execute("any_task", "SELECT id FROM tasks LIMIT 1")
            if rows:
                app.focus.record_session(int(rows[0][0]), random.uniform(1200, 1800))
                st.success("Focus session recorded")
        if fail.button("Simulate a failure", key="simulate_failure"):
            # Uncaught on purpose: recorded on the rerun span and logged, shown in the page.
            raise RuntimeError("simulated failure in the board page")
        epics = app.db.execute("list_epics", "SELECT id, name FROM epics ORDER BY id")
        done, total = app.db.execute(
            "task_progress", "SELECT COALESCE(SUM(done), 0), COUNT(*) FROM tasks"
        )[0]
        st.write(f"{len(epics)} epics, {done}/{total} tasks done")
        for epic_id, epic_name in epics:
            st.write(f"- #{epic_id} {epic_name}")
        logger.info("Board rendered", {"epics": len(epics), "tasks_done": int(done)})


st.session_state.setdefault("user_id", "demo-user")
render_page(get_app(), "board")
