"""The training loop: :func:`train` reads top to bottom, setup, loop, end.

Per step: take a batch (random HR crops of the train split degraded on the fly,
:mod:`cctv_sr.train.sampler`), set the learning rate (:func:`lr_at`), forward, losses
(:mod:`cctv_sr.train.losses`), backward, AdamW step, the discriminator's step (srgan with an
adversarial weight), the EMA update; then, on their steps, a row of ``train.csv``, validation
of the EMA weights (``val.csv``, ``val/step_NNNNNNN.png``) and a checkpoint
(``ckpt_NNNNNNN.pt`` and ``last.pt``, :mod:`cctv_sr.train.checkpoint`). Everything lands in
the run directory. A resumed run (``resume=True``) restores every state from ``last.pt``,
including the RNGs and the data stream, and continues exactly where it stopped.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from cctv_sr.archs import build_arch
from cctv_sr.data.trainset import default_trainset_path, load_trainset
from cctv_sr.errors import ConfigError
from cctv_sr.train import losses as L
from cctv_sr.train.checkpoint import (
    FORMAT,
    capture_rng,
    read_checkpoint,
    restore_rng,
    save_checkpoint,
    spec_for,
)
from cctv_sr.train.recipe import OptimConfig, Recipe, plain, recipe_to_mapping
from cctv_sr.train.sampler import (
    BatchStream,
    make_val_set,
    teacher_embeddings,
    to_image,
    to_input,
)
from cctv_sr.train.validate import (
    GRID_FACES,
    bicubic_baseline,
    model_input,
    save_grid,
    validate,
)

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "ema_update", "lr_at", "run_dir", "train"]


@dataclass(frozen=True)
class TrainResult:
    """What a :func:`train` call did: the run directory, the step reached, the last
    checkpoint, the last validation measures and this call's seconds and throughput (training
    images per second of loop time; with ``run.prefetch`` the degradation overlaps the step,
    so ``degrade_share`` can exceed what the loop waited, ``wait_share``)."""

    out_dir: Path
    step: int
    checkpoint: Path
    metrics: dict[str, float]
    seconds: float
    images_per_s: float
    degrade_share: float  # seconds spent drawing / degrading batches per loop second
    wait_share: float  # share of the loop's time spent waiting for a batch


def lr_at(cfg: OptimConfig, step: int, total: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total``: linear warmup
    over ``warmup_steps``, then cosine to ``min_lr_ratio * lr``, steps of ``gamma`` every
    ``step_size``, or constant."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** ((step - cfg.warmup_steps) // cfg.step_size)
    span = max(1, total - cfg.warmup_steps - 1)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    low = cfg.lr * cfg.min_lr_ratio
    return low + (cfg.lr - low) * 0.5 * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """``ema = d * ema + (1 - d) * model`` with ``d = min(decay, (1 + step) / (10 + step))``
    (a short warmup, so early weights do not linger); buffers (BatchNorm statistics) copied."""
    d = min(decay, (1.0 + step) / (10.0 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - d)
    for eb, mb in zip(ema.buffers(), model.buffers()):
        eb.copy_(mb)


def run_dir(recipe: Recipe) -> Path:
    """``run.out_dir``, or ``<cache root>/train/runs/<arch>`` (``<arch>_t<T>`` for windows of
    T > 1 frames, so a burst model never lands in its single-frame run)."""
    if recipe.run.out_dir:
        return Path(recipe.run.out_dir).expanduser()
    from cctv_sr.models.resolve import cache_root

    name = recipe.arch if recipe.frames == 1 else f"{recipe.arch}_t{recipe.frames}"
    return cache_root() / "train" / "runs" / name


def _open_csv(path: Path, columns: list[str], keep_until: int) -> tuple[Any, Any]:
    """Append to ``path``, dropping rows after step ``keep_until`` (a resumed run rewrites
    what the interrupted one logged after its last checkpoint)."""
    rows: list[dict[str, str]] = []
    if keep_until > 0 and path.is_file():
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until]
    f = path.open("w", newline="")
    writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    f.flush()
    return f, writer


def _check_resume(ckpt: dict[str, Any], recipe: Recipe, path: Path) -> None:
    if ckpt.get("slim") or "optimizer" not in ckpt:
        raise ConfigError(f"{path} is slim ship weights, it cannot be resumed; resume from the "
                          "run's last.pt")
    if ckpt["arch"] != recipe.arch or ckpt["arch_config"] != plain(recipe.arch_config):
        raise ConfigError(f"{path}: checkpoint is {ckpt['arch']} {ckpt['arch_config']}, the "
                          f"recipe asks for {recipe.arch} {plain(recipe.arch_config)}")
    old, new = ckpt["recipe"], recipe_to_mapping(recipe)
    changed = [k for k in new if old.get(k) != new[k]]
    if changed:
        log.warning("resuming %s with changed recipe sections: %s", path, ", ".join(changed))


def _init_from_checkpoint(model: torch.nn.Module, recipe: Recipe, path: Path) -> None:
    """``model`` starts from the EMA weights of another run's checkpoint of the same arch and
    config; or, for an arch with ``init_from`` (lrmfn, lrnet), of a config that differs only in
    ``in_frames`` (a T = 1 head starts a T = 5 one, its first layer spread over the frames).
    ConfigError otherwise; the optimiser, step and RNGs start fresh."""
    start = read_checkpoint(path)
    want = plain(recipe.arch_config)
    other_frames = {**start["arch_config"], "in_frames": want.get("in_frames")} == want
    same = start["arch_config"] == want
    if start["arch"] != recipe.arch or not (same or (other_frames and hasattr(model,
                                                                            "init_from"))):
        raise ConfigError(f"arch.init {path}: a checkpoint of {start['arch']} "
                          f"{start['arch_config']}, the recipe trains {recipe.arch} {want}")
    if same:
        model.load_state_dict(start["ema"])
    else:
        model.init_from(start["ema"])  # type: ignore[operator]
    log.info("%s starts from the EMA weights of %s (step %d)", recipe.arch, path,
             int(start["step"]))


def train(recipe: Recipe, *, resume: bool = False, stop_after: int | None = None,
          quiet: bool = False) -> TrainResult:
    """Train ``recipe`` in its run directory (see the module docstring); ``stop_after`` ends
    this call after that many steps (with a checkpoint), ``quiet`` hides the progress bar."""
    run, data, lc = recipe.run, recipe.data, recipe.loss
    distill = recipe.mode == "distill"
    device = torch.device(run.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device is cuda but torch sees no CUDA device")
    amp = run.amp and device.type == "cuda"
    if run.threads:
        torch.set_num_threads(run.threads)
    out = run_dir(recipe)
    last = out / "last.pt"
    ckpt: dict[str, Any] | None = None
    if resume:
        ckpt = read_checkpoint(last)
        _check_resume(ckpt, recipe, last)
    elif last.exists():
        raise ConfigError(f"{out} already holds a run (last.pt); resume it (--resume) or "
                          "choose another run.out_dir")
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.json").write_text(json.dumps(recipe_to_mapping(recipe), indent=2))
    random.seed(run.seed)
    torch.manual_seed(run.seed)

    # ---- data: the trainset, its identity-disjoint split, the fixed val faces
    trainset_path = Path(data.trainset).expanduser() if data.trainset else default_trainset_path()
    ts = load_trainset(trainset_path)
    train_idx, val_idx = ts.split(data.val_fraction, data.split_seed)
    frames = recipe.frames
    val = make_val_set(ts.crops, ts.group, val_idx, count=data.val_faces, sides=data.val_sides,
                       frames=frames, cfg=data.degrade, seed=data.val_seed)
    log.info("trainset %s: %d train / %d val crops (%d val faces used)", trainset_path,
             len(train_idx), len(val_idx), len(val.index))

    # ---- networks: the model and its EMA, the frozen identity net, optional extras
    model = build_arch(recipe.arch, recipe.arch_config).to(device)
    embedder_path = L.resolve_embedder_path(lc.embedder)
    if recipe.arch_init == "teacher" and ckpt is None:
        model.init_from(torch.load(embedder_path, map_location="cpu", weights_only=True))  # type: ignore[operator]
        log.info("%s starts from the identity network's weights %s", recipe.arch, embedder_path)
    elif recipe.arch_init and ckpt is None:
        _init_from_checkpoint(model, recipe, Path(recipe.arch_init).expanduser())
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    identity = L.FaceIdentity.from_file(embedder_path, device)
    perceptual = None
    if not distill and lc.perceptual_weight > 0:
        perceptual = L.Perceptual(lc.vgg19, lc.perceptual_layers, identity, device)
    disc = None
    if not distill and lc.adversarial_weight > 0:
        disc = build_arch("srgan_d", lc.discriminator).to(device)
    teacher_t, teacher = None, None
    if distill:
        from cctv_sr.models.resolve import cache_root

        cache = Path(data.teacher_cache) if data.teacher_cache else \
            cache_root() / "train" / "teacher"
        teacher = teacher_embeddings(trainset_path, ts.crops, identity.embed, embedder_path,
                                     cache, device)
        teacher_t = torch.from_numpy(teacher).to(device)
    # bicubic + the identity net on the val faces: the SR nets' baseline, and the LR heads'
    # (its id_cos_bicubic is the cos_teacher a head starts to beat)
    baseline = bicubic_baseline(val, identity.embed, device, run.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.optim.lr,
                            betas=(recipe.optim.beta1, recipe.optim.beta2),
                            weight_decay=recipe.optim.weight_decay)
    d_opt = None if disc is None else torch.optim.AdamW(disc.parameters(), lr=lc.disc_lr,
                                                        betas=(0.9, 0.99))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    # ---- state: fresh, or everything from last.pt
    step, elapsed, metrics, data_state = 0, 0.0, dict(baseline), None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        if disc is not None and d_opt is not None:
            disc.load_state_dict(ckpt["disc"])
            d_opt.load_state_dict(ckpt["disc_optimizer"])
        if amp and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        step, elapsed, metrics = int(ckpt["step"]), float(ckpt["elapsed_s"]), ckpt["metrics"]
        data_state = restore_rng(ckpt["rng"])
        log.info("resumed %s at step %d", last, step)
    stream = BatchStream(ts.crops, train_idx, batch_size=run.batch_size, frames=frames,
                         side=data.side, cfg=data.degrade, seed=run.seed, state=data_state,
                         prefetch=run.prefetch)
    if distill:
        names = [n for n, w in (("cosine", lc.distill_cosine_weight),
                                ("relation", lc.distill_relation_weight)) if w > 0]
    else:
        names = [n for n, w in (("pixel", lc.pixel_weight), ("identity", lc.identity_weight),
                                ("perceptual", lc.perceptual_weight),
                                ("adversarial", lc.adversarial_weight)) if w > 0]
    weights = {"cosine": lc.distill_cosine_weight, "relation": lc.distill_relation_weight,
               "pixel": lc.pixel_weight, "identity": lc.identity_weight,
               "perceptual": lc.perceptual_weight, "adversarial": lc.adversarial_weight}
    extra = ["disc"] if disc is not None else []
    train_f, train_csv = _open_csv(out / "train.csv", ["step", "time", "lr", "total", *names,
                                                       *extra, "degrade_s", "step_s"], step)
    val_f: Any = None
    val_csv: Any = None
    end = run.steps if stop_after is None else min(run.steps, step + stop_after)
    bar = tqdm(total=run.steps, initial=step, desc=f"train {recipe.arch}", unit="step",
               disable=quiet, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    t_call, degrade_total, wait_total, done = time.perf_counter(), 0.0, 0.0, 0
    saved = last

    # ---- the loop
    try:
        while step < end:
            t0 = time.perf_counter()
            batch = stream.next()
            wait_total += time.perf_counter() - t0
            lr = lr_at(recipe.optim, step, run.steps)
            for group in opt.param_groups:
                group["lr"] = lr
            x, hr = to_input(batch.lr, device), to_image(batch.hr, device)
            model.train()
            parts: dict[str, torch.Tensor] = {}
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                if distill and teacher_t is not None:
                    emb = model(x)
                    target = teacher_t[torch.from_numpy(batch.index).to(device)]
                    parts["cosine"] = L.identity_loss(emb, target)
                    parts["relation"] = L.relation_loss(emb, target)
                else:
                    sr = model(model_input(recipe.arch, recipe.arch_config, x))
                    parts["pixel"] = L.pixel_loss(lc.pixel, sr, hr, lc.charbonnier_eps)
                    if lc.identity_weight > 0:
                        with torch.no_grad():
                            e_hr = identity.embed(hr)
                        parts["identity"] = L.identity_loss(identity.embed(sr), e_hr)
                    if perceptual is not None:
                        parts["perceptual"] = perceptual(sr, hr)
                    if disc is not None:
                        disc.requires_grad_(False)
                        parts["adversarial"] = L.generator_adversarial(disc, sr)
                        disc.requires_grad_(True)
                total = sum((weights[k] * parts[k] for k in names), torch.zeros((), device=device))
            opt.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            if recipe.optim.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.grad_clip)
            scaler.step(opt)
            if disc is not None and d_opt is not None:
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    parts["disc"] = L.discriminator_loss(disc, sr, hr)
                d_opt.zero_grad(set_to_none=True)
                scaler.scale(parts["disc"]).backward()
                scaler.step(d_opt)
            scaler.update()
            ema_update(ema, model, run.ema_decay, step)
            step, done, data_state = step + 1, done + 1, batch.rng_state
            now = time.perf_counter()
            elapsed += now - t0
            degrade_total += batch.degrade_s
            values = {k: float(v.detach()) for k, v in parts.items()}
            if step % run.log_every == 0 or step == end:
                train_csv.writerow({"step": step, "time": round(elapsed, 3), "lr": lr,
                                    "total": float(total.detach()), **values,
                                    "degrade_s": round(batch.degrade_s, 4),
                                    "step_s": round(now - t0, 4)})
                train_f.flush()
            bar.set_postfix(loss=f"{float(total.detach()):.4f}", refresh=False)
            bar.update(1)

            if step % run.val_every == 0 or step == end:
                found, grid = validate(ema, recipe.arch, recipe.arch_config, val,
                                       identity.embed, teacher, device, run.batch_size)
                metrics = {**baseline, **found}
                if val_f is None:
                    val_f, val_csv = _open_csv(out / "val.csv", ["step", *metrics],
                                               0 if ckpt is None else int(ckpt["step"]))
                val_csv.writerow({"step": step, **metrics})
                val_f.flush()
                if grid is not None:
                    lows = [val.centre_lr(k) for k in range(len(grid))]
                    save_grid(out / "val" / f"step_{step:07d}.png", lows, grid,
                              to_image(val.hr[:GRID_FACES], torch.device("cpu")))
                log.info("step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in
                                                        found.items() if "@" not in k))

            if step % run.ckpt_every == 0 or step == end:
                payload = {
                    "format": FORMAT, "arch": recipe.arch,
                    "arch_config": plain(recipe.arch_config),
                    "spec": spec_for(recipe.arch, recipe.arch_config).to_mapping(),
                    "train_sides": list(data.degrade.side_range) if not data.side
                    else [data.side, data.side],
                    "step": step, "elapsed_s": elapsed, "recipe": recipe_to_mapping(recipe),
                    "metrics": dict(metrics), "model": model.state_dict(),
                    "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": {"schedule": recipe.optim.schedule, "step": step},
                    "disc": None if disc is None else disc.state_dict(),
                    "disc_optimizer": None if d_opt is None else d_opt.state_dict(),
                    "scaler": scaler.state_dict() if amp else None,
                    "rng": capture_rng(data_state),
                }
                saved = save_checkpoint(out / f"ckpt_{step:07d}.pt", payload)
                save_checkpoint(last, payload)
    finally:
        stream.close()
        bar.close()
        train_f.close()
        if val_f is not None:
            val_f.close()
    seconds = time.perf_counter() - t_call
    loop_s = max(elapsed - (float(ckpt["elapsed_s"]) if ckpt else 0.0), 1e-9)
    return TrainResult(out, step, saved, dict(metrics), seconds,
                       done * run.batch_size / loop_s, degrade_total / loop_s,
                       wait_total / loop_s)
