"""The registry's HTML pages: ``/``, ``/models/{namespace}/{name}``, ``/log``, ``/entries/{index}``.

Server-rendered with Jinja2 (autoescape on for every template), one local stylesheet, no JavaScript.
Every response carries a strict Content-Security-Policy (no script may run at all, styles only from
this origin), so even a template mistake could not turn an attested string into running code.
Reads follow the JSON API's rule: when the server requires a token for reads, pages require the
same ``Authorization: Bearer`` header, or the token a browser stored through ``/signin`` (a cookie
only pages read). Errors render as a one-line page with the API's status code, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from attest.errors import AttestError
from registry.auth import ForbiddenError
from registry.db import classify_db_error
from registry.deps import RegistryDep, read_capped_body, require_token
from registry.state import Registry
from registry.web import views

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # never leaks a URL elsewhere; keeps Origin on our own forms
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, whatever its extension
    undefined=jinja2.StrictUndefined,  # a typo in a template fails the tests instead of rendering blank
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals["model_path"] = views.model_path
_env.globals["safe_link"] = views.safe_link
for _name in _env.list_templates():  # compile now: a broken template stops the server at start-up
    _env.get_template(_name)
templates = Jinja2Templates(env=_env)
STATIC = {  # name -> (bytes, media type): read once; the pages reference nothing else
    "web.css": ((HERE / "static" / "web.css").read_bytes(), "text/css"),
    "favicon.svg": ((HERE / "static" / "favicon.svg").read_bytes(), "image/svg+xml"),
}

router = APIRouter(include_in_schema=False)


TOKEN_COOKIE = "attest_read_token"
COOKIE_MAX_AGE = 8 * 3600
MAX_FORM_BYTES = 4096


def _render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    reg: Registry = request.app.state.registry
    context.setdefault("json_url", None)
    context.setdefault("signin", reg.settings.read_token_required)
    context.setdefault("signed_in", TOKEN_COOKIE in request.cookies)
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    if reg.settings.read_token_required:  # a page behind a token must not sit in a shared cache
        response.headers["Cache-Control"] = "private, no-store"
    return response


def _error(request: Request, exc: AttestError, template: str = "error.html", **context: Any) -> Response:
    response = _render(request, template, exc.http_status, message=exc.message, **context)
    if exc.http_status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _credentials(request: Request) -> str | None:
    """The ``Authorization`` header, else the token a browser stored by signing in (pages only:
    the JSON API never reads the cookie, so a cookie cannot be ridden into an API call)."""
    header = request.headers.get("authorization")
    if header:
        return header
    cookie = request.cookies.get(TOKEN_COOKIE)
    return f"Bearer {cookie}" if cookie else None


def _page(request: Request, reg: Registry, template: str, build: Callable[[Any], dict[str, Any]]) -> Response:
    """Check read access, build the context in one read session, render; AttestError -> error page."""
    try:
        if reg.settings.read_token_required:
            require_token(reg, _credentials(request))
        with reg.db.read_session() as session:
            context = build(session)
    except AttestError as exc:
        return _error(request, exc)
    except DBAPIError as exc:  # e.g. PostgreSQL refusing a NUL in a name: the API's status, as HTML
        return _error(request, classify_db_error(exc))
    return _render(request, template, **context)


def _same_origin(request: Request) -> None:
    """Refuse a form posted from another site. Browsers send ``Sec-Fetch-Site`` and ``Origin`` on a
    POST; a page's own form sends its origin (``Referrer-Policy: same-origin``), while a foreign page
    sends its own origin or ``null`` — both refused. Clients that send neither (curl) are not browsers."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if (site is not None and site not in ("same-origin", "none")) or (
        origin is not None and origin.rstrip("/") != str(request.base_url).rstrip("/")
    ):
        raise ForbiddenError("a sign-in form must be posted from this registry's own pages")


def _registry_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for it on every origin (the JSON pages too); answer instead of logging a 404."""
    return static("favicon.svg")


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The stylesheet and icon (public: they hold no registry data)."""
    if name not in STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    body, media_type = STATIC[name]
    return Response(
        body,
        media_type=media_type,
        headers=SECURITY_HEADERS | {"Cache-Control": "public, max-age=3600"},
    )


@router.get("/", response_class=HTMLResponse)
def index(request: Request, reg: RegistryDep, q: str | None = None) -> Response:
    def build(session: Any) -> dict[str, Any]:
        result = views.search(session, q) if q is not None else None
        return {
            "query": q or "",
            "result": result,
            "recent": views.recent_models(session),
            "json_url": result.json_url if result else "/v1/attestations",
        }

    return _page(request, reg, "index.html", build)


@router.get("/models/{namespace}/{name:path}", response_class=HTMLResponse)
def model(request: Request, reg: RegistryDep, namespace: str, name: str) -> Response:
    def build(session: Any) -> dict[str, Any]:
        view = views.model_view(session, namespace, name, _registry_url(request))
        return {"model": view, "json_url": view.json_url}

    return _page(request, reg, "model.html", build)


@router.get("/log", response_class=HTMLResponse)
def log(request: Request, reg: RegistryDep) -> Response:
    def build(session: Any) -> dict[str, Any]:
        first = views.parse_size(request.query_params.get("from"), "from")
        view = views.log_view(session, reg.log, first)
        return {"log": view, "json_url": view.json_url}

    return _page(request, reg, "log.html", build)


@router.get("/entries/{log_index}", response_class=HTMLResponse)
def entry(request: Request, reg: RegistryDep, log_index: str) -> Response:
    def build(session: Any) -> dict[str, Any]:
        index = views.parse_size(log_index, "log index")
        assert index is not None  # a path segment is never empty
        view = views.entry_view(session, reg.log, index)
        return {"entry": view, "json_url": view.json_url}

    return _page(request, reg, "entry.html", build)


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request) -> Response:
    return _render(request, "signin.html", message=None)


@router.post("/signin")
async def signin(request: Request, reg: RegistryDep) -> Response:
    """Check a read token once and keep it in an HttpOnly, SameSite=Strict cookie for the pages.

    Browsers cannot add an ``Authorization`` header to a link; this is how a person reads the pages
    of a registry that requires tokens for reads. A wrong token sets nothing.
    """
    try:
        _same_origin(request)
        body = await read_capped_body(request, MAX_FORM_BYTES)
        token = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[0].strip()
        await run_in_threadpool(require_token, reg, f"Bearer {token}" if token else None)
    except AttestError as exc:
        return _error(request, exc, "signin.html")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout")
def signout(request: Request) -> Response:
    try:
        _same_origin(request)
    except AttestError as exc:
        return _error(request, exc)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/", httponly=True, samesite="strict")
    return response
