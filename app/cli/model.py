"""`sprout model ...`: the embedded model server."""

from __future__ import annotations

import typer

from app.cli.common import console, load_settings

app = typer.Typer(help="The embedded model (Gemma 3 270M on llama.cpp).", no_args_is_help=True)


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="Address to listen on (default: SPROUT_EMBEDDED_HOST)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    parallel: int = typer.Option(None, help="Requests decoded together (default: SPROUT_EMBEDDED_PARALLEL)."),
) -> None:
    """Serve the embedded model (`SPROUT_EMBEDDED_MODEL`) over an OpenAI-compatible API until interrupted."""
    from app.cli.common import CliError
    from app.core.llm.embedded import CHAT_MODEL_ALIAS, EmbeddedServerError, embedded_alias, model_file
    from app.core.llm.embedded import serve as run_server

    settings = load_settings()
    try:
        alias = embedded_alias(settings.embedded.model)
        model = settings.embedded.model_path or model_file(alias, settings.data_dir)
    except (ValueError, EmbeddedServerError) as exc:
        raise CliError(f"SPROUT_EMBEDDED_MODEL: {exc}") from None
    console.print(f"model: {model}")
    run_server(
        model,
        host or settings.embedded.host,
        port,
        parallel or settings.embedded.parallel,
        settings.embedded.threads,
        settings.embedded.ctx_per_slot,
        prompt_cache=settings.embedded.prompt_cache,
        alias=alias,
        own_template=alias == CHAT_MODEL_ALIAS,
    )


@app.command("path")
def path() -> None:
    """Write out the bundled GGUF (if needed) and print its path."""
    from app.core.llm.embedded import bundled_model_path

    print(bundled_model_path(load_settings().data_dir))
