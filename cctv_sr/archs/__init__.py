"""The project's own model architectures: pure ``nn.Module`` classes, built by name.

Each architecture is a row of kind ``arch`` in the one backend registry
(:mod:`cctv_sr.models.registry`) and takes one frozen config dataclass (its class attribute
``config_class``; every field has a default). Importing this package imports no architecture;
:func:`build_arch` imports the one asked for. ``ARCHS`` is a read-only view ``name ->
"module:Class"`` of the rows.

=================  =======================================  ==============================
name               class                                    config
=================  =======================================  ==============================
``srgan``          :class:`~.srgan.SrganGenerator`          :class:`~.srgan.SrganConfig`
``srgan_d``        :class:`~.srgan.SrganDiscriminator`      ``SrganDiscriminatorConfig``
``ipunet``         :class:`~.ipunet.IpuNet`                 :class:`~.ipunet.IpuNetConfig`
``lrnet``          :class:`~.lrnet.LrNet`                   :class:`~.lrnet.LrNetConfig`
``vgg19_features`` :class:`~.vgg.Vgg19Features`             ``Vgg19FeaturesConfig``
``lrhead``         :class:`~.lrhead.LrHead`                 :class:`~.lrhead.LrHeadConfig`
``lrmfn``          :class:`~.lrmfn.LrMfn`                   :class:`~.lrmfn.LrMfnConfig`
=================  =======================================  ==============================

The SR nets and the LR head share one input convention (:mod:`cctv_sr.archs.common`):
``(N, T*3, s, s)`` float BGR in ``[0, 1]``. Sizes and costs are measured with
:mod:`cctv_sr.archs.profile`.

Example::

    net = build_arch("lrnet", LrNetConfig(in_frames=3))   # or build_arch("lrnet")
    config_class("lrnet")                                  # LrNetConfig
"""

from __future__ import annotations

from typing import Any

from torch import nn

from cctv_sr.errors import ConfigError
from cctv_sr.models import registry

ARCHS = registry.BackendTable("arch")
# the architectures that are LR identity heads (LR crop -> an embedder's space), trained by
# distillation, not as SR; the one list for the embedder, eval, training and export
HEAD_ARCHS = ("lrhead", "lrmfn")

__all__ = ["ARCHS", "HEAD_ARCHS", "arch_class", "build_arch", "config_class"]


def arch_class(name: str) -> type[nn.Module]:
    """The ``nn.Module`` class registered as ``name`` (imported now); unknown names raise
    ConfigError with a suggestion."""
    return registry.load_class("arch", name, nn.Module)


def config_class(name: str) -> type[Any]:
    """The config dataclass that the architecture ``name`` takes."""
    cls = arch_class(name)
    found = getattr(cls, "config_class", None)
    if not isinstance(found, type):
        raise ConfigError(f"arch.name: {name!r} ({cls.__name__}) declares no config_class")
    return found


def build_arch(name: str, config: object | None = None) -> nn.Module:
    """A fresh, randomly initialised ``name`` built from ``config`` (its defaults when None).

    A config of another architecture's type raises ConfigError. No weights are loaded; use
    ``load_state_dict`` on the result.
    """
    cls = arch_class(name)
    expected = config_class(name)
    if config is None:
        config = expected()
    elif not isinstance(config, expected):
        raise ConfigError(f"arch.name: {name!r} takes a {expected.__name__}, got "
                          f"{type(config).__name__}")
    return cls(config)
