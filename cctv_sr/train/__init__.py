"""Training the project's own nets (issue 8): ``cctv-sr train RECIPE.toml``.

One recipe (:mod:`~cctv_sr.train.recipe`) names the architecture and its config, the data and
its degradations, the losses, the optimizer and the run; :func:`train` runs the loop
(:mod:`~cctv_sr.train.loop`) and writes ``train.csv``, ``val.csv``, validation pictures and
checkpoints into the run directory; :func:`load_checkpoint` gives a trained net (EMA weights,
eval mode) and its :class:`~cctv_sr.models.spec.ModelSpec`. Example::

    recipe = load_recipe(Path("pipelines/train_lrnet.toml"), ["run.steps=200"])
    result = train(recipe)                    # result.checkpoint, result.metrics
    net, spec = load_checkpoint(result.checkpoint)
"""

from __future__ import annotations

from cctv_sr.train.checkpoint import load_checkpoint, read_checkpoint
from cctv_sr.train.loop import TrainResult, lr_at, run_dir, train
from cctv_sr.train.recipe import Recipe, load_recipe, recipe_from_mapping, recipe_to_mapping

__all__ = ["Recipe", "TrainResult", "load_checkpoint", "load_recipe", "lr_at",
           "read_checkpoint", "recipe_from_mapping", "recipe_to_mapping", "run_dir", "train"]
