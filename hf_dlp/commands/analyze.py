"""`hf-dlp analyze`: token-level Δlog p / entropy / KL analysis of a base/RLVR model pair, saved as JSON, PNG and an
HTML page (`index.html`, `--no-html` to skip)."""

from __future__ import annotations

import argparse

from ..loading import DTYPE_NAMES
from ._options import add_option

NAME = "analyze"
HELP = (
    "Score responses with a base and an RLVR model: Δlog p, entropy and KL per token, summary, token tables, Fig. 1b "
    "plots and an HTML page."
)

SAMPLING_FLAGS = ("max_new_tokens", "temperature", "top_p")
"""Sampling flags; unset ones keep hf_dlp's default sampling (`hf_dlp.generation.DEFAULT_SAMPLING`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "base_model", required=True, help="Base model: local folder or Hub id.")
    add_option(parser, "rl_model", required=True, help="RLVR model: folder or Hub id, same tokenizer.")
    add_option(
        parser,
        "dataset",
        required=True,
        help="Rows to analyse: a .json/.jsonl/.csv/.parquet file, a `save_to_disk` folder, a Hub dataset id, or "
        "`toy:LEVEL` for the offline arithmetic prompts. With a response column the responses are scored as "
        "they are; otherwise `num_samples` responses per prompt are sampled from each model first.",
    )
    add_option(
        parser, "output_dir", required=True, help="Folder for analysis.json, token_values.pt and the PNG plots."
    )
    add_option(parser, "split", default="train", help="Dataset split (files and Hub datasets).")
    add_option(parser, "prompt_column", default="prompt")
    add_option(
        parser,
        "response_column",
        default=None,
        help="Column of responses to score; must exist when given (default: 'response' if the dataset has one).",
    )
    add_option(parser, "source_column", default="source", help="Who wrote each response (`base` / `rl`).")
    add_option(parser, "max_examples", type=int, default=None, help="Use only the first N rows.")
    add_option(parser, "chat", action="store_true", help="Send string prompts as one user message (chat template).")
    add_option(parser, "num_samples", type=int, default=4, help="Responses per prompt and model when sampling.")
    add_option(parser, "max_new_tokens", type=int, default=None, help="Sampling length (default: 256).")
    add_option(parser, "temperature", type=float, default=None, help="Sampling temperature (default: 1.0).")
    add_option(parser, "top_p", type=float, default=None, help="Nucleus sampling (default: 0.7, the paper's).")
    add_option(parser, "batch_size", type=int, default=8, help="Sequences per scoring forward pass.")
    add_option(parser, "generation_batch_size", type=int, default=32, help="Sequences per `generate` call.")
    add_option(parser, "max_length", type=int, default=None, help="Cut prompt + response to this many tokens.")
    add_option(
        parser,
        "logprobs_top_k",
        type=int,
        default=None,
        help="Reproduce the paper code's top-k log-prob approximation (it uses 50); default: exact.",
    )
    add_option(parser, "dtype", default="auto", choices=DTYPE_NAMES)
    add_option(
        parser,
        "device",
        default=None,
        help="cpu, cuda, ... (default: this process's GPU under `accelerate launch`/`torchrun`, else cuda if "
        "available).",
    )
    add_option(
        parser,
        "device_map",
        default=None,
        help="Place each model with `from_pretrained(device_map=...)` instead of `--device` (e.g. 'auto' to spread a "
        "pair too big for one GPU over the visible GPUs).",
    )
    add_option(parser, "seed", type=int, default=0)
    add_option(parser, "no_plots", action="store_true", help="Write the JSON only.")
    add_option(
        parser,
        "html",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Write index.html, the analysis as one self-contained page: summary, figures, token tables and the "
        "responses coloured token by token (on by default; --no-html skips it).",
    )
    add_option(
        parser,
        "page_responses",
        type=int,
        default=None,
        help="Responses shown on the page (default: hf_dlp.analysis.page.DEFAULT_MAX_RESPONSES, 100); all of them "
        "stay in token_values.pt and analysis.json.",
    )
    add_option(
        parser,
        "reward_column",
        default="reward",
        help="Column of a reward per scored response (correct when above 0); when the data set has it, the page "
        "can filter by correctness.",
    )


def _load_rows(args: argparse.Namespace):
    """The data set, with its prompt (and an explicitly named response) column checked before any model loads."""
    from hf_dlp.loading import load_dataset_spec

    required = (args.prompt_column, *([args.response_column] if args.response_column else []))
    dataset = load_dataset_spec(
        args.dataset,
        split=args.split,
        limit=args.max_examples,
        num_examples=args.max_examples or 32,
        required_columns=required,
    )
    if args.chat:
        column = args.prompt_column
        dataset = dataset.map(lambda row: {column: [{"role": "user", "content": row[column]}]})
    return dataset


def _score(args: argparse.Namespace, dataset, response_column: str):
    """Score the dataset's responses (settings checked before the models load)."""
    from hf_dlp.analysis import analyze_responses
    from hf_dlp.analysis.responses import check_scoring_options
    from hf_dlp.model_pair import load_model_pair

    options = check_scoring_options(
        batch_size=args.batch_size, max_length=args.max_length, logprobs_top_k=args.logprobs_top_k
    )
    base, rl, tokenizer = load_model_pair(
        base_model=args.base_model,
        rl_model=args.rl_model,
        dtype=args.dtype,
        device=args.device,
        device_map=args.device_map,
    )
    return analyze_responses(
        base_model=base,
        rl_model=rl,
        tokenizer=tokenizer,
        dataset=dataset,
        prompt_column=args.prompt_column,
        response_column=response_column,
        source_column=args.source_column,
        **options,
    )


def _sample_and_score(args: argparse.Namespace, dataset):
    from hf_dlp.analysis import analyze_model_pair

    sampling = {name: getattr(args, name) for name in SAMPLING_FLAGS if getattr(args, name) is not None}
    return analyze_model_pair(
        base_model=args.base_model,
        rl_model=args.rl_model,
        prompts=dataset,
        prompt_column=args.prompt_column,
        num_samples=args.num_samples,
        generation_batch_size=args.generation_batch_size,
        scoring_batch_size=args.batch_size,
        logprobs_top_k=args.logprobs_top_k,
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
        device_map=args.device_map,
        **sampling,
    )


def run(args: argparse.Namespace) -> int:
    """Run the analysis; under `accelerate launch`/`torchrun` the work is shared and the main process writes and
    prints the report."""
    from hf_dlp.analysis.page import PAGE_FILE
    from hf_dlp.analysis.report import ALL_METRICS_FILE, FIG1B_FILE, POSITIONS_FILE, REPORT_FILE
    from hf_dlp.arguments import check_output_dir
    from hf_dlp.distributed import is_main_process

    output_dir = check_output_dir("output_dir", args.output_dir)  # before any data, model or compute
    dataset = _load_rows(args)
    response_column = args.response_column or "response"
    if response_column in dataset.column_names:
        report = _score(args, dataset, response_column)
    else:
        report = _sample_and_score(args, dataset)
    report.settings.update(base_model=str(args.base_model), rl_model=str(args.rl_model), dataset=args.dataset)
    if not is_main_process():
        return 0
    output = report.save(output_dir, plots=not args.no_plots, html=args.html, **_page_options(args, dataset, report))
    counts = ", ".join(f"{report.sources.count(s)} {s}" for s in report.source_names)
    print(f"Scored {report.num_tokens} tokens in {report.num_responses} responses ({counts}).")
    print(report.format_table())
    print(f"Report: {output / REPORT_FILE}")
    if not args.no_plots:
        print(f"Plots:  {output / FIG1B_FILE}\n        {output / ALL_METRICS_FILE}\n        {output / POSITIONS_FILE}")
    if args.html:
        print(f"Page:   {output / PAGE_FILE}")
    return 0


def _page_options(args: argparse.Namespace, dataset, report) -> dict:
    """The page's options: its response cap, and, when the scored rows are the report's responses, their prompts
    (plain strings) and rewards (`--reward_column`)."""
    if not args.html:
        return {}
    options = {} if args.page_responses is None else {"max_responses": args.page_responses}
    if len(dataset) == report.num_responses and (args.response_column or "response") in dataset.column_names:
        prompts = dataset[args.prompt_column]
        if all(isinstance(prompt, str) for prompt in prompts):
            options["prompts"] = prompts
        if args.reward_column in dataset.column_names:
            options["rewards"] = [None if r is None else float(r) for r in dataset[args.reward_column]]
    return options
