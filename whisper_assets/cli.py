"""`whisper-assets` command line: the embedded demo, quick DuckDB queries, the review app, the transcription
server and its champion, stuck runs."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from whisper_assets.settings import CONFIG_ENV_VAR, SettingsError, load_settings
from whisper_assets.web_access import bind_refusal

DEMO_ROOT = Path("demo")
# The demo trains twice, so MLflow has two runs to compare: first a schedule too short to learn the commands,
# then the settings' recipe, which beats it and becomes the champion.
DEMO_FIRST_RECIPE = {"max_steps": 50, "full_window_steps": 5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="whisper-assets", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="generate demo uploads and materialize the whole graph")
    demo.add_argument(
        "--root", type=Path, default=DEMO_ROOT, help="where the demo's data lives (default: demo/)"
    )
    query = commands.add_parser("query", help="run SQL against the DuckDB catalog of all tables")
    query.add_argument("sql")
    add_config_argument(query)
    create_db = commands.add_parser("create-review-db", help="create an empty review database (SQLite)")
    create_db.add_argument("path", type=Path)
    review = commands.add_parser("review", help="serve the review web app for a review database")
    review.add_argument("--db", type=Path, required=True)
    add_bind_arguments(review, 8080, "WHISPER_ASSETS_REVIEW_TOKEN", "access token")
    review.add_argument("--dagster", default="http://127.0.0.1:3000/graphql", help="Dagster GraphQL endpoint")
    review.add_argument("--max-audio-seconds", type=float, default=600.0, help="longer blobs are rejected")
    serve = commands.add_parser(
        "serve",
        help="serve the champion model with OpenAI's audio API (transcriptions, translations, models), and key events",
    )
    add_config_argument(serve)
    add_bind_arguments(serve, 8000, "WHISPER_ASSETS_SERVE_TOKEN", "API key clients send as a Bearer token")
    serve.add_argument(
        "--pin", metavar="VERSION", help="serve this version instead of following the champion"
    )
    champion = commands.add_parser(
        "champion", help="list the registered model versions, or move the champion alias (a rollback)"
    )
    add_config_argument(champion)
    champion.add_argument("--set", metavar="VERSION", dest="version", help="make this version the champion")
    dashboard = commands.add_parser(
        "dashboard", help="write the evaluation dashboard of one run, or of two runs side by side"
    )
    add_config_argument(dashboard)
    dashboard.add_argument(
        "runs", nargs="+", metavar="RUN", help="a run folder name or MLflow run id; two runs compare them"
    )
    release = commands.add_parser(
        "release-run",
        help="mark a run whose worker died as failed and free its pool slots (e.g. a stuck `gpu` slot)",
    )
    release.add_argument("run_id")
    keys = commands.add_parser(
        "decode-keys",
        help="write the key events (KeyA_DOWN KeyA_UP ...) a keystroke model hears in a recording",
    )
    keys.add_argument("audio", type=Path)
    add_config_argument(keys)
    weights = keys.add_mutually_exclusive_group()
    weights.add_argument(
        "--run", type=Path, help="a keystroke run folder (default: the newest under the data root)"
    )
    weights.add_argument("--model", type=Path, help="an exported keystroke model folder (model/ of a run)")
    keys.add_argument(
        "--checkpoint", choices=("best", "latest"), default="best", help="which checkpoint of the run"
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except SettingsError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"settings file (default: ${CONFIG_ENV_VAR} or whisper_assets.yaml)")


def add_bind_arguments(parser: argparse.ArgumentParser, port: int, token_env: str, token_help: str) -> None:
    """Where a web app listens, and who may reach it (see `refused`)."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument(
        "--token",
        default=os.environ.get(token_env),
        help=f"{token_help} (or ${token_env}); required when --host is not a loopback address",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="another Host name the app answers to (a DNS name people use to reach it); repeatable",
    )


def run(args: argparse.Namespace) -> int:
    if args.command == "review":
        return run_review_app(args)
    if args.command == "demo":
        return run_demo(args.root)
    if args.command == "serve":
        return run_server(args)
    if args.command == "champion":
        return run_champion(args.config, args.version)
    if args.command == "release-run":
        return run_release(args.run_id)
    if args.command == "dashboard":
        return run_dashboard(args.config, args.runs)
    if args.command == "decode-keys":
        return run_decode_keys(args)
    if args.command == "create-review-db":
        from whisper_assets.sources.review_db import create_database

        print(f"review database ready: {create_database(args.path)}")
        return 0
    return run_query(args.sql, args.config)


def run_decode_keys(args: argparse.Namespace) -> int:
    from whisper_assets.keystrokes.inference import KeyDecoder, newest_run

    if args.model:
        decoder = KeyDecoder.from_model_dir(args.model)
    else:
        run_dir = args.run or newest_run(load_settings(args.config).layout.models_root / "keystrokes")
        if run_dir is None:
            print(
                "error: no keystroke run yet: materialize keystroke_model, or pass --run/--model",
                file=sys.stderr,
            )
            return 2
        decoder = KeyDecoder.from_run(run_dir, args.checkpoint)
    print(f"decoding {args.audio} with {decoder.source}", file=sys.stderr)
    print(" ".join(decoder.decode_file(args.audio)))
    return 0


def run_release(run_id: str) -> int:
    import dagster as dg

    from whisper_assets.defs.run_launcher import release_run

    with dg.DagsterInstance.get() as instance:
        try:
            marked, freed = release_run(instance, run_id)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"run {run_id}: {'marked failed' if marked else 'already ended'}; {freed} pool slot(s) freed")
    return 0


def run_demo(root: Path) -> int:
    from whisper_assets.demo.data import generate_demo

    _quiet_libraries()
    root = root.resolve()
    with serve_folder(root / "remote") as recordings_url:
        config = generate_demo(root, recordings_url)
        return _materialize_demo(root, config)


def _quiet_libraries() -> None:
    """The demo prints what a user should read: no library progress bars, set-up chatter or deprecation
    notices of code that is not ours (peft's own use of a transformers name). Set in the environment too, so
    the step processes Dagster starts inherit it; a user's own setting wins."""
    peft_notice = "`is_gradient_checkpointing` is deprecated"
    quiet = {
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' load/save bars use the hub's switch
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a model downloaded to rank the review queue
        "PYTHONWARNINGS": f"ignore:{peft_notice}:FutureWarning",
    }
    for name, value in quiet.items():
        os.environ.setdefault(name, value)
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=peft_notice, category=FutureWarning)


def _materialize_demo(root: Path, config: Path) -> int:
    import dagster as dg

    from whisper_assets.definitions import build_definitions
    from whisper_assets.defs.keystrokes import keystroke_sources
    from whisper_assets.defs.partitions import source_partitions
    from whisper_assets.defs.training import exported_model, training_job_assets
    from whisper_assets.demo.data import espeak_available
    from whisper_assets.export.ctranslate import export_available
    from whisper_assets.sources.review_db import ReviewDbSource
    from whisper_assets.tts.versions import current_version

    settings = load_settings(config)
    voice = "espeak-ng speech" if espeak_available() else "synthetic signals (install espeak-ng for speech)"
    print(f"Generated demo uploads with {voice} under {settings.layout.uploads_root}")

    if "DAGSTER_HOME" in os.environ:
        instance = dg.DagsterInstance.get()
    else:
        print("DAGSTER_HOME is not set: using a temporary instance (runs will not show in the UI).")
        instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(str(config))
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    keys = [key for source_keys in settings.partition_keys().values() for key in source_keys]
    instance.add_dynamic_partitions(source_partitions.name, keys)
    for name in keys:
        print(f"Materializing {name} ...")
        defs.resolve_job_def("ingest_source").execute_in_process(
            partition_key=name, instance=instance, run_config=quiet
        )
    defs.resolve_job_def("publish_splits").execute_in_process(instance=instance, run_config=quiet)
    for source in settings.sources:
        if source.tts is not None:
            print(f"Building the TTS voice dataset of {source.name} ...")
            defs.resolve_job_def("build_tts_dataset").execute_in_process(
                partition_key=source.name, instance=instance, run_config=quiet
            )
            print(f"  {current_version(settings.layout.tts_root / source.name / 'dataset', 'tts_dataset')}")
    for name in keystroke_sources(settings):
        print(f"Training the keystroke model of {name} (typing recordings, a tiny random encoder) ...")
        for job in ("keystroke_data", "keystroke_training"):
            defs.resolve_job_def(job).execute_in_process(
                partition_key=name, instance=instance, run_config=quiet
            )
        print(
            f"  try it: whisper-assets decode-keys --config {config} {settings.layout.mirrors_root}/recordings/{name}/<file>.webm"
        )
    skipped = set() if export_available() else {exported_model.key}
    print_summary(settings)
    for recipe in (DEMO_FIRST_RECIPE, {}):
        steps = recipe.get("max_steps", settings.training.max_steps)
        print(
            f"\nTraining the demo model (a tiny random Whisper, {steps} CPU steps) {recipe or ''} and evaluating it ..."
        )
        result = defs.resolve_job_def("train_and_evaluate").execute_in_process(
            instance=instance,
            run_config=quiet | {"ops": {"whisper_model": {"config": recipe}}},
            raise_on_error=False,
            asset_selection=[a.key for a in training_job_assets if a.key not in skipped],
        )
        print_model_summary(result)
    for source in settings.sources:
        if isinstance(source, ReviewDbSource):
            rank_reviews(defs, instance, quiet, source)
    print(
        "\nOpen the Dagster UI on these runs with:\n"
        f"  {CONFIG_ENV_VAR}={config} make ui\n"
        "then browse Assets -> inventory / processed_audio / segments / splits, or Automation for the sensors."
    )
    return try_the_champion(settings, config) if not skipped else 0


def rank_reviews(defs, instance, run_config: dict, source) -> None:
    """Order a review database's unreviewed entries hardest first with the champion, as `rank_reviews` does."""
    result = defs.resolve_job_def("rank_reviews").execute_in_process(
        partition_key=source.name, instance=instance, run_config=run_config, raise_on_error=False
    )
    events = result.get_asset_materialization_events()
    if not events:
        print(f"\nRanking the review queue of {source.name} failed; see the run in the Dagster UI.")
        return
    meta = {k: v.value for k, v in events[0].materialization.metadata.items()}
    print(
        f"\nReview queue of {source.name}: {meta['scored']} unreviewed entries ranked by {meta['model']}; open it "
        f"with\n  whisper-assets review --db {source.path}   (then Order: hardest first)"
    )


def try_the_champion(settings, config: Path) -> int:
    """Serve the demo's champion and transcribe a held-out clip through the server with the openai client."""
    from whisper_assets.demo.data import COMMANDS_SOURCE
    from whisper_assets.demo.try_server import ServerTryFailed, held_out_clip, transcribe_through_server

    serve_hint = f"Serve it yourself: {CONFIG_ENV_VAR}={config} make serve  (OpenAI's audio API on :8000/v1)"
    found = held_out_clip(settings.layout.catalog_path, COMMANDS_SOURCE)
    if found is None or importlib.util.find_spec("openai") is None:  # the client comes with the dev extra
        print(f"\n{serve_hint}")
        return 0
    clip, said = found
    print(
        f"\nServing the champion (whisper-assets serve) and transcribing {clip.name} with the openai client ..."
    )
    try:
        heard = transcribe_through_server(config, clip, "en")
    except ServerTryFailed as failure:
        print(f"The champion could not be served: {failure}", file=sys.stderr)
        return 1
    print(f"  said:        {said}\n  transcribed: {heard}\n{serve_hint}")
    return 0


def print_summary(settings) -> None:
    from whisper_assets.tables import query

    catalog = settings.layout.catalog_path
    sections = {
        "Files per source": "SELECT source, count(*) AS files, count(rejection_reason) AS rejected, "
        "round(sum(duration) / 60, 2) AS minutes FROM inventory GROUP BY source ORDER BY source",
        "Rejected or excluded, with reasons": """
            SELECT source, rel_path, 'inventory' AS stage, rejection_reason AS reason FROM inventory
              WHERE rejection_reason IS NOT NULL
            UNION ALL SELECT source, rel_path, 'dedup', 'duplicate (' || duplicate_kind || ') of ' || canonical_id
              FROM dedup_report WHERE NOT is_canonical
            UNION ALL SELECT source, rel_path, 'transcripts', rejection_reason FROM normalized_transcripts
              WHERE NOT accepted
            UNION ALL SELECT source, rel_path, 'processed_audio', reason FROM processed_audio
              WHERE status NOT IN ('ok', 'needs_segmentation')
            UNION ALL SELECT source, id, 'segments', reason FROM segments WHERE status <> 'ok'
            ORDER BY source, rel_path""",
        "Long recordings cut into segments": """
            SELECT source, rel_path, count(*) FILTER (WHERE status = 'ok') AS segments,
              count(*) FILTER (WHERE status <> 'ok') AS dropped, round(sum(duration), 1) AS seconds
            FROM segments WHERE id <> parent_id GROUP BY source, rel_path ORDER BY source, rel_path""",
        "Splits": "SELECT split, count(*) AS items, round(sum(duration), 1) AS seconds, "
        "string_agg(DISTINCT language, ',') AS languages FROM splits GROUP BY split ORDER BY split",
    }
    for title, sql in sections.items():
        columns, rows = query(catalog, sql)
        print(f"\n{title}:")
        _print_rows(columns, rows)
    print(f"\nManifests: {settings.layout.manifests_root / 'splits'}/{{train,validation,test}}.jsonl")
    print(f"Word timings and karaoke files: {settings.layout.outputs_root}/<item id>/")
    print(f"DuckDB catalog: {catalog}")


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve a folder over HTTP on 127.0.0.1 for the demo's remote-recordings source; yields the base URL."""
    folder.mkdir(parents=True, exist_ok=True)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def print_model_summary(result) -> None:
    import json

    events = {e.asset_key.path[-1]: e for e in result.get_asset_materialization_events()}
    if "eval_metrics" not in events:
        print("\nTraining or evaluation failed; see the run in the Dagster UI.")
        return
    meta = {k: v.value for k, v in events["eval_metrics"].materialization.metadata.items()}
    report = json.loads(Path(meta["report"]).read_text())
    print(f"\nWER of {meta['run']} (model version {meta['model_version']}) and its base model:")
    rows = [
        (model, name, *(scores[k] for k in SUMMARY_SCORES))
        for model in ("finetuned", "base")
        for split, s in report[model].items()
        for name, scores in _split_and_sources(split, s)
    ]
    _print_rows(["model", "split", "wer_orth", "wer_norm", "wer_folded", "cer_norm", "utterances"], rows)
    [check] = result.get_asset_check_evaluations()
    print(f"Champion gate: {'passed' if check.passed else 'not passed'} ({check.description})")
    if "eval_dashboard" in events:
        dashboard = {k: v.value for k, v in events["eval_dashboard"].materialization.metadata.items()}
        print(f"Dashboard: {dashboard.get('versus', dashboard['dashboard'])}")
        if "mlflow_compare" in dashboard:
            print(f"Both runs in MLflow: {dashboard['mlflow_compare']}")
    if "exported_model" in events:
        print(f"CTranslate2 export: {events['exported_model'].materialization.metadata['path'].value}")
    print(f"MLflow run: {meta['mlflow_run']}  (start the UI with `make mlflow-ui`)")


SUMMARY_SCORES = ("wer_orthographic", "wer_normalized", "wer_folded", "cer_normalized", "utterances")


def _split_and_sources(split: str, scores: dict) -> list[tuple[str, dict]]:
    """A split's overall figures, then each source's (as `test:<source>`) when it holds several sources."""
    by_source = scores.get("by_source", {})
    sources = [(f"{split}:{source}", s) for source, s in by_source.items()] if len(by_source) > 1 else []
    return [(split, scores["overall"]), *sources]


def refused(host: str, token: str | None, token_hint: str) -> bool:
    """Say why an app must not bind to this address (see web_access.bind_refusal), if it must not."""
    if refusal := bind_refusal(host, token, token_hint):
        print(refusal, file=sys.stderr)
    return refusal is not None


def run_review_app(args: argparse.Namespace) -> int:
    import uvicorn

    from whisper_assets.review_app.app import create_app

    host = args.host.strip()
    if refused(
        host,
        args.token,
        "pass --token (or set WHISPER_ASSETS_REVIEW_TOKEN) and open the page with ?token=...",
    ):
        return 2
    print(f"review app on http://{host}:{args.port}/" + (f"?token={args.token}" if args.token else ""))
    app = create_app(
        args.db,
        access_token=args.token,
        dagster_graphql=args.dagster,
        bound_host=host,
        allowed_hosts=args.allowed_host,
        max_audio_seconds=args.max_audio_seconds,
    )
    uvicorn.run(app, host=host, port=args.port, log_level="warning")
    return 0


def run_server(args: argparse.Namespace) -> int:
    import uvicorn

    from whisper_assets.serving.app import create_app
    from whisper_assets.serving.keys import NewestKeyDecoder
    from whisper_assets.serving.pool import ModelPool
    from whisper_assets.tracking.tracker import Tracker

    host = args.host.strip()
    if refused(
        host, args.token, "pass --token (or set WHISPER_ASSETS_SERVE_TOKEN); clients send it as their API key"
    ):
        return 2
    settings = load_settings(args.config)
    serving = settings.serving
    if args.pin:
        serving = serving.model_copy(update={"pinned_version": args.pin.removeprefix("v")})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tracker = Tracker.from_settings(settings.mlflow, settings.layout.mlflow_root)
    pool = ModelPool.create(tracker, serving, settings.layout.cache_root / "serving")
    keys = NewestKeyDecoder(settings.layout.models_root / "keystrokes")
    app = create_app(pool, args.token, host, args.allowed_host, keys=keys)
    print(f"transcription server on http://{host}:{args.port}/v1 (health: /health)")
    uvicorn.run(app, host=host, port=args.port, log_level="warning")
    return 0


def run_dashboard(config: str | None, runs: list[str]) -> int:
    from mlflow.exceptions import MlflowException

    from whisper_assets.evaluation.dashboard import write_dashboard
    from whisper_assets.tracking.tracker import Tracker

    if len(runs) > 2:
        print("error: give one run, or two to compare", file=sys.stderr)
        return 2
    settings = load_settings(config)
    tracker = Tracker.from_settings(settings.mlflow, settings.layout.mlflow_root)
    try:
        page = write_dashboard(runs, settings.layout, tracker)
    except (FileNotFoundError, MlflowException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"dashboard: {page}")
    return 0


def run_champion(config: str | None, version: str | None) -> int:
    from whisper_assets.tracking.tracker import PROMOTED_AT_TAG, Tracker, UnknownVersion

    settings = load_settings(config)
    tracker = Tracker.from_settings(settings.mlflow, settings.layout.mlflow_root)
    if version is not None:
        previous = tracker.champion()
        try:
            tracker.set_champion(version.removeprefix("v"))
        except UnknownVersion as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(
            f"champion: v{previous or '-'} -> v{version.removeprefix('v')} (servers follow within their poll interval)"
        )
        return 0
    versions = tracker.model_versions()
    if not versions:
        print(f"{tracker.registered_model} has no registered versions yet: materialize `whisper_model`")
        return 0
    rows = [
        (v.version, ",".join(v.aliases), v.tags.get(PROMOTED_AT_TAG, ""), v.run_id)
        for v in reversed(versions)
    ]
    _print_rows(["version", "aliases", "promoted_at", "mlflow_run"], rows)
    return 0


def run_query(sql: str, config: str | None) -> int:
    from whisper_assets.tables import query

    settings = load_settings(config)
    if not settings.layout.catalog_path.exists():
        print(f"no catalog at {settings.layout.catalog_path}: materialize `splits` first", file=sys.stderr)
        return 1
    _print_rows(*query(settings.layout.catalog_path, sql))
    return 0


def _print_rows(columns: list[str], rows: list[tuple]) -> None:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [min(60, max([len(c), *(len(r[i]) for r in cells)])) for i, c in enumerate(columns)]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  " + "  ".join(v[:w].ljust(w) for v, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
