"""Does stage 04's truth-free ranking pick the regime method that recovers the truth best? Both scenario families.

Stage 04 ranks the methods of a run without the truth by `reference_score`: the mean Spearman correlation of a
method's regime with the underlying's forward 21-day realised volatility and its drawdown (`RANK_REFERENCES`), never
with an index built from the same smile. Issue 28 asks that the published regime be the method this criterion ranks
first, provided the criterion picks the method with the higher ARI in most scenarios of both families. This bench
measures that on markets that volregime never tuned on: stages 01-04 in process (demo profile, day granularity, no
causal refits: the ranking is of labels of the whole history), then for each market

- the pairs of candidate methods (persistent K-means, HMM smoothed, jump model smoothed, Ward, plain K-means) whose ARIs
  differ by at least `--gap`, and how many of them the criterion orders as the ARI does;
- the ARI of the criterion's first pick beside that of the published default (persistent K-means) and of the best
  method in hindsight (the oracle, which no user has).

    python bench/method_ranking.py [--family noisy|heldout|both] [--n 6] [--years 6] [--gap 0.02]
"""
from __future__ import annotations

import argparse
import itertools
import tempfile

import polars as pl
from _common import scenario_markets

from volregime.robustness import scenario_params, stage_runners
from volregime.validate import reference_score, with_label_kind

CANDIDATES = [("persistent", "smoothed"), ("hmm", "smoothed"), ("jump", "smoothed"), ("ward", "smoothed"), ("kmeans", "filtered_insample")]

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--family", default="both", choices=["noisy", "heldout", "both"])
ap.add_argument("--n", type=int, default=6, help="markets per family (seeds 0..n-1)")
ap.add_argument("--years", type=float, default=6.0)
ap.add_argument("--gap", type=float, default=0.02, help="pairs whose ARIs differ by less are ties and not counted")
a = ap.parse_args()


def ranked(art) -> pl.DataFrame:
    "method, label_kind, ari_truth, reference_score of the candidate methods of one run."
    val = with_label_kind(pl.read_parquet(art.validation))
    wide = val.filter(pl.col("value").is_not_null()).pivot(on="metric", index=["method", "label_kind"], values="value")
    wide = wide.with_columns(reference_score(wide))   # stage 04's key without a truth
    keep = pl.concat_list("method", "label_kind").list.join("/").is_in(["/".join(c) for c in CANDIDATES])
    return wide.filter(keep).select("method", "label_kind", "ari_truth", "reference_score").drop_nulls()


rows = []
for fam in (["noisy", "heldout"] if a.family == "both" else [a.family]):
    with tempfile.TemporaryDirectory(prefix="volregime-rank-") as work:
        for sc, m, art, exports in scenario_markets(fam, 0, a.n, a.years, work):
            params = scenario_params(exports, "demo", "quick", {"granularities": ["day"], "n_boot": 10, "causal_min_days": 10 ** 6})
            for stage, (cls, fn) in list(stage_runners().items())[:4]:
                fn(art, cls.from_dict(params))
            g = ranked(art)
            pairs = [(x, y) for x, y in itertools.combinations(g.rows(named=True), 2) if abs(x["ari_truth"] - y["ari_truth"]) >= a.gap]
            right = sum((x["reference_score"] - y["reference_score"]) * (x["ari_truth"] - y["ari_truth"]) > 0 for x, y in pairs)
            top = g.sort("reference_score", descending=True).row(0, named=True)
            pers = g.filter(pl.col("method") == "persistent")["ari_truth"]
            rows.append({"family": fam, "scenario": sc.name, "pairs": len(pairs), "pairs_right": right,
                         "top_method": f"{top['method']} ({top['label_kind']})", "ari_top": top["ari_truth"],
                         "ari_persistent": pers[0] if len(pers) else None, "ari_oracle": g["ari_truth"].max()})
            print(rows[-1], flush=True)

df = pl.DataFrame(rows)
pl.Config.set_tbl_width_chars(200)
print(df.group_by("family", maintain_order=True).agg(
    markets=pl.len(), pairs_right_share=pl.col("pairs_right").sum() / pl.col("pairs").sum(),
    top_median=pl.col("ari_top").median(), top_p10=pl.col("ari_top").quantile(0.1, "linear"),
    persistent_median=pl.col("ari_persistent").median(), persistent_p10=pl.col("ari_persistent").quantile(0.1, "linear"),
    oracle_median=pl.col("ari_oracle").median(),
    top_at_least_persistent=(pl.col("ari_top") >= pl.col("ari_persistent") - 1e-12).mean()))
