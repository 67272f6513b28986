"""`aftercare guides list|show` and `aftercare assist QUESTION`: the troubleshooting guides and
the answer service. Guides are read from the shipped content (like `catalog list`); `assist`
asks the stack's API when someone is logged in (`POST /assist`, with that user's rights) and
otherwise answers from the shipped content on this machine: the same answer either way."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from aftercare.domain.guides import load_guides
from aftercare.models.guides import GuideLanguage

from infra.cli_core import CliError, StackOptions, stack_command
from infra.cli_output import emit
from infra.cli_session import api_client_for

guides_app = typer.Typer(help="troubleshooting guides (per fault code and model)")
GUIDE_FIELDS = ["guide_id", "code", "model", "self_service", "title"]
ANSWER_FIELDS = ["kind", "code", "guide", "faq", "confidence", "title"]
Lang = Annotated[str, typer.Option(help="en or zh-CN")]


def _language(lang: str) -> GuideLanguage:
    try:
        return GuideLanguage.parse(lang)
    except ValueError as exc:
        raise CliError(f"unknown language {lang!r}: en or zh-CN") from exc


@guides_app.command("list")
@stack_command
def guides_list(lang: Lang = "en", *, opts: StackOptions) -> None:
    """Every guide: code, model (when model-specific), whether it is self-service, title."""
    book = load_guides()
    language = _language(lang)
    rows = [g.view(language, book.version).model_dump(mode="json") for g in book.guides]
    emit(rows, opts.json, GUIDE_FIELDS)


@guides_app.command("show")
@stack_command
def guides_show(
    code: Annotated[str, typer.Option(help="the fault code")],
    model: Annotated[str | None, typer.Option(help="the product model")] = None,
    lang: Lang = "en",
    *,
    opts: StackOptions,
) -> None:
    """The guide a customer with CODE on MODEL is offered, in LANG."""
    book = load_guides()
    guide = book.find(code, model)
    if guide is None:
        raise CliError(f"no_guide: no troubleshooting guide for {code}")
    emit(guide.view(_language(lang), book.version).model_dump(mode="json"), opts.json)


def assist(
    question: Annotated[str, typer.Argument(show_default=False)],
    lang: Lang = "zh-CN",
    thing: Annotated[str | None, typer.Option(help="the device asked about")] = None,
    *,
    opts: StackOptions,
) -> None:
    """Best-matching guide steps and FAQ answers, with a confidence; offers a ticket when low."""
    language = _language(lang)
    client = api_client_for(opts)
    body: dict[str, Any] = {"question": question, "lang": language.value}
    if client is not None:
        answer = client.post("/assist", body | ({"thing": thing} if thing else {}))
    else:
        if thing is not None:
            raise CliError("--thing needs a login: `aftercare login --user NAME`")
        from infra.assist_eval import assistant

        answer = assistant().ask(question, language).model_dump(mode="json")
    if opts.json:
        emit(answer, True)
    else:
        emit(answer["answers"], False, ANSWER_FIELDS)
        typer.echo(f"offer_ticket: {answer['offer_ticket']}")
