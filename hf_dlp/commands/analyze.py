"""`hf-dlp analyze`: token-level Δlog p / entropy / KL analysis of a base/RLVR model pair, saved as JSON + PNG."""

from __future__ import annotations

import argparse

NAME = "analyze"
HELP = "Score responses with a base and an RLVR model: Δlog p, entropy and KL per token, summary and Fig. 1b plots."

def _option(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """Accept both `--name_with_underscores` and `--name-with-dashes`."""
    spellings = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    parser.add_argument(*spellings, dest=name, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _option(parser, "base", required=True, help="Base model: local folder or Hub id.")
    _option(parser, "rl", required=True, help="RLVR model: local folder or Hub id (same tokenizer).")
    _option(
        parser,
        "dataset",
        required=True,
        help="Rows to analyse: a .json/.jsonl/.csv/.parquet file, a `save_to_disk` folder, a Hub dataset id, or "
        "`toy:LEVEL` for the offline arithmetic prompts. With a `response` column the responses are scored as "
        "they are; otherwise `num_samples` responses per prompt are sampled from each model first.",
    )
    _option(parser, "output_dir", required=True, help="Folder for analysis.json, token_values.pt and the PNG plots.")
    _option(parser, "split", default="train", help="Dataset split (files and Hub datasets).")
    _option(parser, "prompt_column", default="prompt")
    _option(parser, "response_column", default="response")
    _option(parser, "source_column", default="source", help="Who wrote each response (`base` / `rl`).")
    _option(parser, "max_examples", type=int, default=None, help="Use only the first N rows.")
    _option(parser, "chat", action="store_true", help="Send string prompts as one user message (chat template).")
    _option(parser, "num_samples", type=int, default=4, help="Responses per prompt and model when sampling.")
    _option(parser, "max_new_tokens", type=int, default=256)
    _option(parser, "temperature", type=float, default=1.0)
    _option(parser, "top_p", type=float, default=1.0)
    _option(parser, "batch_size", type=int, default=8, help="Sequences per scoring forward pass.")
    _option(parser, "generation_batch_size", type=int, default=32)
    _option(parser, "max_length", type=int, default=None, help="Cut prompt + response to this many tokens.")
    _option(parser, "top_k", type=int, default=None, help="Reproduce the paper code's top-k (50) approximation.")
    _option(parser, "dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    _option(parser, "device", default=None, help="cpu, cuda, ... (default: cuda if available).")
    _option(parser, "seed", type=int, default=0)
    _option(parser, "no_plots", action="store_true", help="Write the JSON only.")


def run(args: argparse.Namespace) -> int:
    from hf_dlp.analysis import analyze_model_pair, analyze_responses, load_model_pair
    from hf_dlp.analysis.report import ALL_METRICS_FILE, FIG1B_FILE, REPORT_FILE
    from hf_dlp.loading import load_dataset_spec

    dataset = load_dataset_spec(
        args.dataset, split=args.split, limit=args.max_examples, num_examples=args.max_examples or 32
    )
    if args.chat:
        column = args.prompt_column
        dataset = dataset.map(lambda row: {column: [{"role": "user", "content": row[column]}]})
    base, rl, tokenizer = load_model_pair(args.base, args.rl, dtype=args.dtype, device=args.device)
    if args.response_column in dataset.column_names:
        report = analyze_responses(
            base,
            rl,
            tokenizer,
            dataset,
            prompt_column=args.prompt_column,
            response_column=args.response_column,
            source_column=args.source_column,
            batch_size=args.batch_size,
            max_length=args.max_length,
            top_k=args.top_k,
        )
    else:
        report = analyze_model_pair(
            base,
            rl,
            dataset,
            tokenizer=tokenizer,
            prompt_column=args.prompt_column,
            num_samples=args.num_samples,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            generation_batch_size=args.generation_batch_size,
            scoring_batch_size=args.batch_size,
            top_k=args.top_k,
            seed=args.seed,
        )
    report.settings.update(base=str(args.base), rl=str(args.rl), dataset=args.dataset)
    output = report.save(args.output_dir, plots=not args.no_plots)
    counts = ", ".join(f"{report.sources.count(s)} {s}" for s in report.source_names)
    print(f"Scored {report.num_tokens} tokens in {report.num_responses} responses ({counts}).")
    print(report.format_table())
    print(f"Report: {output / REPORT_FILE}")
    if not args.no_plots:
        print(f"Plots:  {output / FIG1B_FILE}\n        {output / ALL_METRICS_FILE}")
    return 0
