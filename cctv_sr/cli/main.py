"""Command line: ``cctv-sr run``, ``bench``, ``gallery``, ``eval``, ``models``, ``train``,
``export``.

Errors the user can fix are one line on stderr (``cctv-sr: error: ...``) and exit code 1;
Ctrl-C exits 130 after writing what was in flight (0 for a live stream, where Ctrl-C is the
normal way to stop).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from cctv_sr import EVIDENCE_NOTE, __version__
from cctv_sr.cli.bench import add_bench_parser, run_bench
from cctv_sr.cli.demo import add_demo_parser, run_demo
from cctv_sr.cli.eval import add_eval_parser, run_eval
from cctv_sr.cli.export import add_export_parser, run_export
from cctv_sr.cli.gallery import add_gallery_parser, run_gallery
from cctv_sr.cli.models import add_models_parser, run_models
from cctv_sr.cli.report import add_report_parser, run_report
from cctv_sr.cli.run import add_run_parser, run_run
from cctv_sr.cli.train import add_train_parser, run_train
from cctv_sr.errors import CctvSrError, ContractError

log = logging.getLogger("cctv_sr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cctv-sr", description="Turn CCTV footage into identifiable faces.",
        epilog=EVIDENCE_NOTE)
    parser.add_argument("--version", action="version", version=f"cctv-sr {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_parser(sub)
    add_bench_parser(sub)
    add_gallery_parser(sub)
    add_eval_parser(sub)
    add_models_parser(sub)
    add_train_parser(sub)
    add_export_parser(sub)
    add_report_parser(sub)
    add_demo_parser(sub)
    return parser


def _sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="cctv-sr: %(levelname)s: %(message)s")
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.command == "run":
            return run_run(args)
        if args.command == "bench":
            return run_bench(args)
        if args.command == "gallery":
            return run_gallery(args)
        if args.command == "eval":
            return run_eval(args)
        if args.command == "train":
            return run_train(args)
        if args.command == "export":
            return run_export(args)
        if args.command == "report":
            return run_report(args)
        if args.command == "demo":
            return run_demo(args)
        return run_models(args)
    except ContractError as exc:
        # A component broke its contract: not something the user can fix with a setting.
        print(f"cctv-sr: internal error: {exc} (a bug in cctv-sr or one of its backends, not "
              "a problem with your settings; please report it with the output of -vv)",
              file=sys.stderr)
        log.debug("details", exc_info=exc)
        return 1
    except CctvSrError as exc:
        print(f"cctv-sr: error: {exc}", file=sys.stderr)
        if exc.__cause__ is not None and args.verbose:
            log.exception("details")
        return 1
    except KeyboardInterrupt:
        print("cctv-sr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
