"""Actions that change state: promote, rollback, reload, mark a review item.

Each is two steps. ``GET /actions/NAME?...`` shows what will happen (the current champion, the
gate that will judge, the queued prediction) and a form; ``POST /actions/NAME`` does it through the
same library call as its CLI twin, so it is recorded the same way:

- promote: :func:`noria.registry.promote` (``noria promote MODEL VERSION [--force --reason]``): the
  gate's decision on the version's tags and the champion history;
- rollback: :func:`noria.registry.rollback` (``noria rollback MODEL --reason``): the history;
- reload: the service's own ``POST /reload`` with the caller's key (``curl -X POST URL/reload``);
- review: :func:`noria.monitoring.review.mark_review` (``noria monitor review --mark``): one line
  of ``<monitoring.dir>/review/marks.jsonl``.

Both steps need an admin key (``NORIA_ADMIN_KEYS``); a POST from another origin is refused, and the
login cookie is SameSite=Strict, so another site cannot act with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from noria.console import layout
from noria.console.auth import read_form, request_key
from noria.console.pages import Page
from noria.errors import NoriaError

if TYPE_CHECKING:
    from noria.console.app import Console

ACTIONS = ("promote", "rollback", "reload", "review")


def add(app: FastAPI, console: Console) -> None:
    def refused(request: Request) -> Response | None:
        if not console.access.actions_enabled:
            message = "actions are off: start the console with admin keys in NORIA_ADMIN_KEYS"
            return console.html(Page("Not allowed", {}, [layout.error_box(message)]), "/actions", 403)
        if not console.access.can_act(request_key(request)):
            message = "this needs an admin key (NORIA_ADMIN_KEYS): sign in with one on /login"
            return console.html(Page("Not allowed", {}, [layout.error_box(message)]), "/actions", 403)
        origin = request.headers.get("origin")
        if request.method == "POST" and origin and urlparse(origin).netloc != request.url.netloc:
            return console.html(
                Page("Not allowed", {}, [layout.error_box("a form from another site")]), "/actions", 403
            )
        return None

    @app.get("/actions/{name}", include_in_schema=False)
    async def confirm(request: Request, name: str) -> Response:
        denied = refused(request)
        if denied is not None:
            return denied
        query = dict(request.query_params)
        try:
            page = await run_in_threadpool(_confirmation, console, name, query)
        except NoriaError as exc:
            return console.html(Page("Cannot do that", {}, [layout.error_box(exc.message, exc.fix)]), "/actions", 400)
        return console.html(page, "/actions")

    @app.post("/actions/{name}", include_in_schema=False)
    async def act(request: Request, name: str) -> Response:
        denied = refused(request)
        if denied is not None:
            return denied
        form = await read_form(request)
        try:
            page = await run_in_threadpool(
                _do, console, name, form, request.headers.get("authorization") or request_key(request)
            )
        except NoriaError as exc:
            return console.html(Page("Not done", {}, [layout.error_box(exc.message, exc.fix)]), "/actions", 400)
        return console.html(page, "/actions")


def _field(values: Mapping[str, str], name: str) -> str:
    from noria.errors import ConfigError

    value = values.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name}: missing", fix=f"give {name} (the form's field)")
    return value


def _form_html(action: str, hidden: Mapping[str, Any], inner: str, button: str) -> str:
    fields = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(str(v))}">' for k, v in hidden.items())
    return (
        f'<form method="post" action="/actions/{action}"><fieldset><legend>Confirm</legend>{fields}{inner}'
        f' <button type="submit" class="danger">{escape(button)}</button> <a href="/">Cancel</a></fieldset></form>'
    )


def _confirmation(console: Console, name: str, query: Mapping[str, str]) -> Page:
    from noria.errors import NotFoundError

    project = console.project
    if name == "promote":
        from noria.registry import get_version, list_models

        model, version = _field(query, "model"), _field(query, "version")
        info = get_version(project, f"{model}/{version}")
        (summary,) = list_models(project, model)
        champion = summary.aliases.get("champion")
        what = (
            f"<p>Version {info.version} of {escape(model)} becomes @champion <strong>if it beats the current champion"
            f" (version {champion}) on the recorded holdout evaluation</strong>; otherwise it stays @challenger. "
            "The gate's decision is recorded on the version and in the champion history, as "
            f"<code>noria promote {escape(model)} {info.version}</code> records it.</p>"
        )
        inner = (
            '<label><input type="checkbox" name="force" value="1"> skip the gate (needs a reason)</label>'
            '<label for="a-reason">reason</label><input id="a-reason" name="reason" size="40">'
        )
        form = _form_html("promote", {"model": model, "version": info.version}, inner, f"Promote version {version}")
        return Page(f"Promote {model} version {version}?", {}, [what, form])
    if name == "rollback":
        from noria.registry import champion_history

        model = _field(query, "model")
        history = champion_history(project, model)
        if len(history.stack) < 2:
            raise NotFoundError(f"{model} has no previous champion to roll back to", fix="promote a version instead")
        what = (
            f"<p>@champion of {escape(model)} moves from version {history.stack[-1]} back to version "
            f"{history.stack[-2]}; recorded in the champion history with your reason, as "
            f"<code>noria rollback {escape(model)} --reason ...</code> records it.</p>"
        )
        inner = '<label for="a-reason">reason (required)</label><input id="a-reason" name="reason" size="40" required>'
        return Page(f"Roll back {model}?", {}, [what, _form_html("rollback", {"model": model}, inner, "Roll back")])
    if name == "reload":
        if not console.serving_url:
            raise NotFoundError("no service URL given", fix="start the console with --serving-url http://HOST:PORT")
        what = (
            f"<p>The service at {escape(console.serving_url)} checks the registry aliases now and swaps its model if "
            "they moved (its <code>POST /reload</code>, with your key).</p>"
        )
        return Page("Reload the service's model?", {}, [what, _form_html("reload", {}, "", "Reload")])
    if name == "review":
        from noria.monitoring.review import VERDICTS, review_rows

        window, request_id = _field(query, "window"), _field(query, "request_id")
        rows = [r for r in review_rows(project, window)["rows"] if str(r.get("request_id")) == request_id]
        if not rows:
            raise NotFoundError(f"request {request_id!r} is not in the review queue of {window}")
        row = rows[0]
        shown = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("mark", "probabilities") and v is not None)
        what = (
            f"<p>Your verdict on request {escape(request_id)} of {escape(window)} is appended to the review marks "
            f"(who and when), as <code>noria monitor review --window {escape(window)} --mark {escape(request_id)}"
            f" --verdict V</code> records it.</p><p class=muted>{escape(shown)}</p>"
        )
        radios = "".join(
            f'<label><input type="radio" name="verdict" value="{v}"{" checked" if i == 0 else ""}> {v}</label>'
            for i, v in enumerate(VERDICTS)
        )
        inner = f'{radios}<label for="a-note">note</label><input id="a-note" name="note" size="40">'
        hidden = {"window": window, "request_id": request_id}
        return Page(f"Mark request {request_id}?", {}, [what, _form_html("review", hidden, inner, "Record verdict")])
    raise NotFoundError(f"no action {name!r}", fix=f"one of {', '.join(ACTIONS)}")


def _do(console: Console, name: str, form: Mapping[str, str], authorization: str | None) -> Page:
    from noria.errors import NotFoundError

    project = console.project
    if name == "promote":
        from noria.registry import promote

        model, version = _field(form, "model"), _field(form, "version")
        force = form.get("force") == "1"
        decision = promote(project, model, version, force=force, reason=form.get("reason", ""))
        text = (
            f"{model} version {decision.version} is now @champion (was {decision.previous_champion})"
            if decision.promoted
            else f"{model} version {decision.version} stays @{decision.alias}"
        )
        return _done(text, f"reason: {decision.reason}", f"/models/{model}/{decision.version}")
    if name == "rollback":
        from noria.registry import rollback

        model = _field(form, "model")
        result = rollback(project, model, _field(form, "reason"))
        text = f"{model}@champion: version {result.from_version} -> {result.to_version}"
        return _done(text, f"by {result.by}: {result.reason}", "/models")
    if name == "reload":
        import httpx

        if not console.serving_url:
            raise NotFoundError("no service URL given", fix="start the console with --serving-url http://HOST:PORT")
        headers = {"Authorization": authorization} if authorization else {}
        try:
            answer = httpx.post(console.serving_url.rstrip("/") + "/reload", headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            from noria.errors import ExternalToolError

            raise ExternalToolError(f"the service did not answer: {exc}", fix="is `noria serve` running?") from exc
        return _done(f"the service answered {answer.status_code}", answer.text[:2000], "/")
    if name == "review":
        from noria.monitoring.review import mark_review

        window, request_id = _field(form, "window"), _field(form, "request_id")
        record = mark_review(project, window, request_id, _field(form, "verdict"), form.get("note", ""))
        return _done(
            f"request {request_id} marked {record['verdict']}",
            f"by {record['by']} at {record['at']}",
            f"/monitoring/review?window={window}",
        )
    raise NotFoundError(f"no action {name!r}", fix=f"one of {', '.join(ACTIONS)}")


def _done(headline: str, detail: str, back: str) -> Page:
    body = (
        f'<p role="status"><strong>{escape(headline)}</strong></p><p>{escape(detail)}</p>'
        f'<p><a href="{escape(back)}">Back</a></p>'
    )
    return Page("Done", {"result": headline, "detail": detail}, [body])


__all__ = ["ACTIONS", "add"]
