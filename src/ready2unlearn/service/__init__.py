"""The deletion service: ``r2u serve`` puts the ledger behind an authenticated HTTP API and a dashboard.

- :mod:`~ready2unlearn.service.config` — :class:`ServiceConfig` (where, how big, how many workers);
- :mod:`~ready2unlearn.service.schemas` — the request and response bodies (pydantic), validated strictly;
- :mod:`~ready2unlearn.service.auth` — bearer tokens (API) and the dashboard's session cookie, roles;
- :mod:`~ready2unlearn.service.limits` — the body-size limit (an ASGI middleware);
- :mod:`~ready2unlearn.service.workers` — the ``r2u request process --watch`` workers beside the server;
- :mod:`~ready2unlearn.service.api` — the JSON API (``/api/v1``), described by ``/openapi.json``;
- :mod:`~ready2unlearn.service.dashboard` / :mod:`~ready2unlearn.service.plots` — the server-rendered pages;
- :mod:`~ready2unlearn.service.app` — :func:`create_app`, which wires them together.

Needs the ``serve`` extra: ``pip install 'ready2unlearn[serve]'``.
"""
