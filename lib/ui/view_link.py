"""The view a page shows, kept in its URL: a copied link opens the same view.

`restore_view` reads the link before the widgets are drawn; a bad value becomes a warning
naming the parameter. `keep_view` writes the widgets' view back, so the address bar is
always a link to what is on screen. `view_state` does the parsing, without Streamlit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import streamlit as st

from . import view_state
from .access import Access
from .keys import last_link_key, last_view_key
from .settings import DashboardSettings
from .view_state import ViewState


def restore_view(page: str, params: Iterable[str], settings: DashboardSettings,
                 access: Access) -> ViewState:
    """The view this page shows, from its link when the link says something new.

    Call it before the page's widgets are drawn. When the URL's parameters are not the
    ones this page last wrote, a link was opened: the parameters are checked, each bad
    value becomes a warning naming the parameter, and the widgets are set to show the
    view. Otherwise the widgets keep what the viewer chose. A page opened again without
    parameters shows the viewer's last view on it. A viewer locked to a tenant sees that
    tenant whatever the URL says. A share link's view is the one it was signed with.

    Args:
        page: the page's name, for its keys in the session state.
        params: the URL parameters the page reads.
        settings: the dashboard's settings (the default refresh interval).
        access: who is looking.

    Returns:
        The view to show.
    """
    params = tuple(params)
    if access.link is not None:
        view, _ = view_state.parse_view(access.link.view, params, today=view_state.utc_today(),
                                        default_refresh=settings.refresh_seconds)
        return replace(view, tenant=access.link.tenant)
    query = {key: st.query_params[key] for key in params if key in st.query_params}
    view, problems = view_state.parse_view(query, params, today=view_state.utc_today(),
                                           default_refresh=settings.refresh_seconds)
    locked = access.locked_tenant
    if locked is not None:
        view, problems = _lock_tenant(view, problems, query, locked)
    widgets = view_state.widget_values(view, params)
    link_changed = st.session_state.get(last_link_key(page)) != query
    if link_changed or any(key not in st.session_state for key in widgets):
        for problem in problems:
            st.warning(problem.message, icon=":material/link_off:")
        remembered = st.session_state.get(last_view_key(page))
        if not query and isinstance(remembered, ViewState):
            view = remembered if locked is None else replace(remembered, tenant=locked)
        for key, value in view_state.widget_values(view, params).items():
            st.session_state[key] = value
    return view


def _lock_tenant(view: ViewState, problems: list[view_state.LinkProblem],
                 query: Mapping[str, Any], tenant: str,
                 ) -> tuple[ViewState, list[view_state.LinkProblem]]:
    """`view` for `tenant` whatever the link asks, and a warning if it asked for another."""
    problems = [problem for problem in problems if problem.param != view_state.TENANT]
    asked = query.get(view_state.TENANT)
    if isinstance(asked, (list, tuple)):
        asked = asked[-1] if asked else ""
    if asked is not None and str(asked).strip() != tenant:
        problems.append(view_state.LinkProblem(view_state.TENANT, str(asked),
                                               "is not a tenant you may see", f"`{tenant}`"))
    return replace(view, tenant=tenant), problems


def keep_view(page: str, params: Iterable[str], view: ViewState, access: Access) -> None:
    """Write `view` into the URL, so the address bar is always a link to what is shown.

    A share link's URL is left as it was opened: it is the link.

    Args:
        page: the page's name, for its keys in the session state.
        params: the URL parameters the page writes.
        view: the view on screen.
        access: who is looking.
    """
    if access.link is not None:
        return
    params = tuple(params)
    query = view_state.to_query(view, params)
    for key, value in query.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value
    st.session_state[last_link_key(page)] = query
    st.session_state[last_view_key(page)] = view


def widget_view(current: ViewState, params: Iterable[str], access: Access) -> ViewState:
    """The view this page's widgets hold now (see `view_state.view_from_widgets`).

    A share link's view has no widgets. A locked viewer's tenant never comes from a
    widget.

    Args:
        current: the view before the widgets were read; it fills what no widget holds.
        params: the URL parameters whose widgets are read.
        access: who is looking.

    Returns:
        The view the widgets describe.
    """
    if access.link is not None:
        return current
    widgets = view_state.widget_values(current, params)
    view = view_state.view_from_widgets({key: st.session_state.get(key) for key in widgets},
                                        current)
    locked = access.locked_tenant
    return view if locked is None else replace(view, tenant=locked)
