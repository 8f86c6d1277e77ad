"""Site resources and the site resource manager: check, reserve (with expiry), allocate, free.

A job's ``resource_spec`` entry for one site is a mapping such as ``{"num_gpus": 2,
"mem_per_gpu": 16}``. The standard keys are :data:`STANDARD_KEYS`; any other key is a
:class:`ResourceError` unless the site declares it in :attr:`SiteResources.extra`.

``num_gpus``, ``num_cpus``, ``memory`` and the extra keys are *consumed* by a job;
``mem_per_gpu`` is a *capacity* requirement (each of the site's GPUs must have at least that
much memory) and is never subtracted.

:class:`ResourceManager` keeps its state explicitly in memory and takes the clock as a callable:
it does no I/O, starts no threads and can be driven step by step in tests (STYLE.md rule 6).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from fedra.core.errors import ConfigError
from fedra.core.jsonfile import JsonObject

NUM_GPUS = "num_gpus"
MEM_PER_GPU = "mem_per_gpu"
NUM_CPUS = "num_cpus"
MEMORY = "memory"
#: The keys every site understands.
STANDARD_KEYS = (NUM_GPUS, MEM_PER_GPU, NUM_CPUS, MEMORY)
_CONSUMED = (NUM_GPUS, NUM_CPUS, MEMORY)
_LABELS = {NUM_GPUS: "GPUs", NUM_CPUS: "CPUs", MEMORY: "GiB of memory"}


class ResourceError(ConfigError):
    """A resource spec is invalid (unknown key, bad value) or a manager call is not allowed."""


@dataclass(frozen=True)
class SiteResources:
    """What a site has (its total) or has left (a free snapshot); memory figures in GiB."""

    num_gpus: int = 0
    mem_per_gpu: float = 0.0
    num_cpus: int = 0
    memory: float = 0.0
    #: Site-specific resources, e.g. ``{"fpga": 2}``; only keys declared here may be asked for.
    extra: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in (*_CONSUMED, MEM_PER_GPU):
            _check_number("(site)", key, getattr(self, key))
        for key, value in self.extra.items():
            if key in STANDARD_KEYS:
                raise ResourceError(f"extra resource '{key}' shadows a standard key")
            _check_number("(site)", key, value)
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def as_dict(self) -> JsonObject:
        """JSON form, as in ``local/resources.json`` (and in site heartbeats); ``extra`` only
        when the site declares some."""
        out: JsonObject = {
            "num_gpus": self.num_gpus,
            "mem_per_gpu": self.mem_per_gpu,
            "num_cpus": self.num_cpus,
            "memory": self.memory,
        }
        if self.extra:
            out["extra"] = {key: value for key, value in self.extra.items()}  # JSON values
        return out

    @classmethod
    def from_dict(cls, data: object, where: str = "resources") -> SiteResources:
        """Parse the JSON form; :class:`ResourceError` naming ``where`` for anything wrong."""
        if not isinstance(data, Mapping):
            raise ResourceError(f"{where}: expected a JSON object, got {data!r}")
        unknown = sorted(set(data) - {*STANDARD_KEYS, "extra", "format_version", "comment"})
        if unknown:
            raise ResourceError(
                f"{where}: unknown key(s) {', '.join(unknown)}; standard keys are "
                f"{', '.join(STANDARD_KEYS)}, site-specific ones go under 'extra'"
            )
        extra = data.get("extra", {})
        if not isinstance(extra, Mapping):
            raise ResourceError(f"{where}: extra: expected an object, got {extra!r}")
        values = {key: _check_number(where, key, data[key]) for key in STANDARD_KEYS if key in data}
        try:
            return cls(
                num_gpus=int(values.get(NUM_GPUS, 0)),
                mem_per_gpu=values.get(MEM_PER_GPU, 0.0),
                num_cpus=int(values.get(NUM_CPUS, 0)),
                memory=values.get(MEMORY, 0.0),
                extra={str(k): float(v) for k, v in extra.items()},
            )
        except ResourceError as exc:
            raise ResourceError(f"{where}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ResourceError(f"{where}: extra: {exc}") from exc

    def amount(self, key: str) -> float:
        """The quantity of one consumable key (standard or extra)."""
        return float(getattr(self, key)) if key in _CONSUMED else float(self.extra.get(key, 0))

    def minus(self, amounts: Mapping[str, float]) -> SiteResources:
        """These resources with ``amounts`` (consumable keys) taken away."""
        return self._shift(amounts, -1)

    def plus(self, amounts: Mapping[str, float]) -> SiteResources:
        """These resources with ``amounts`` (consumable keys) given back."""
        return self._shift(amounts, 1)

    def _shift(self, amounts: Mapping[str, float], sign: int) -> SiteResources:
        extra = dict(self.extra)
        num_gpus, num_cpus, memory = self.num_gpus, self.num_cpus, self.memory
        for key, value in amounts.items():
            if key == NUM_GPUS:
                num_gpus = int(num_gpus + sign * value)
            elif key == NUM_CPUS:
                num_cpus = int(num_cpus + sign * value)
            elif key == MEMORY:
                memory += sign * value
            else:
                extra[key] = extra.get(key, 0.0) + sign * value
        return replace(self, num_gpus=num_gpus, num_cpus=num_cpus, memory=memory, extra=extra)


def _check_number(site: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ResourceError(f"{site}: resource '{key}' must be a number >= 0, got {value!r}")
    if key in (NUM_GPUS, NUM_CPUS) and value != int(value):
        raise ResourceError(f"{site}: resource '{key}' must be a whole number, got {value!r}")
    return float(value)


def demand(site: str, spec: Mapping[str, Any], resources: SiteResources) -> dict[str, float]:
    """Validate one site's spec against what the site declares; return the consumed amounts.

    Raises :class:`ResourceError` for a key that is neither standard nor declared in
    ``resources.extra``, or for a value that is not a number >= 0.
    """
    consumed: dict[str, float] = {}
    for key, value in spec.items():
        if key not in STANDARD_KEYS and key not in resources.extra:
            raise ResourceError(
                f"{site}: unknown resource '{key}' (standard: {', '.join(STANDARD_KEYS)};"
                f" declared by the site: {', '.join(sorted(resources.extra)) or 'none'})"
            )
        number = _check_number(site, key, value)
        if key != MEM_PER_GPU and number:
            consumed[key] = number
    return consumed


def shortfall(site: str, spec: Mapping[str, Any], free: SiteResources) -> str | None:
    """None when ``free`` can hold ``spec``; else one line naming the site and the resource.

    E.g. ``"site-2 has 1 of 2 GPUs free"`` (has 1 of the 2 the job asks for).
    """
    consumed = demand(site, spec, free)
    for key, need in consumed.items():
        have = free.amount(key)
        if have < need:
            label = _LABELS.get(key, f"'{key}'")
            return f"{site} has {_fmt(have)} of {_fmt(need)} {label} free"
    need_mem = float(spec.get(MEM_PER_GPU, 0))
    if need_mem and consumed.get(NUM_GPUS, 0) and free.mem_per_gpu < need_mem:
        return f"{site} has {_fmt(free.mem_per_gpu)} GiB per GPU, the job needs {_fmt(need_mem)}"
    return None


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


@dataclass(frozen=True)
class Reservation:
    """Resources held for a job until it is allocated or ``expires_at`` passes."""

    job_id: str
    amounts: Mapping[str, float]
    expires_at: float


@dataclass(frozen=True)
class Allocation:
    """Resources given to a running job; ``gpus`` are the concrete device indices."""

    job_id: str
    amounts: Mapping[str, float]
    gpus: tuple[int, ...] = ()

    def cuda_visible_devices(self) -> str:
        """The value for ``CUDA_VISIBLE_DEVICES`` in this job's processes only."""
        return ",".join(str(i) for i in self.gpus)


class ResourceManager:
    """One site's resources: totals, live reservations and allocations (all state in memory).

    ``clock`` returns the current time in seconds (e.g. ``time.monotonic``); it is the only
    source of time, so tests pass a fake one.
    """

    def __init__(self, site: str, total: SiteResources, clock: Callable[[], float]) -> None:
        self.site = site
        self.total = total
        self._clock = clock
        self._reservations: dict[str, Reservation] = {}
        self._allocations: dict[str, Allocation] = {}

    @property
    def reservations(self) -> Mapping[str, Reservation]:
        """Reservations not yet dropped (some may be expired until :meth:`expire` runs)."""
        return MappingProxyType(self._reservations)

    @property
    def allocations(self) -> Mapping[str, Allocation]:
        """Current allocations by job id."""
        return MappingProxyType(self._allocations)

    def free_resources(self) -> SiteResources:
        """Total minus allocations and live (unexpired) reservations."""
        now = self._clock()
        free = self.total
        for alloc in self._allocations.values():
            free = free.minus(alloc.amounts)
        for res in self._reservations.values():
            if res.expires_at > now:
                free = free.minus(res.amounts)
        return free

    def check(self, job_id: str, spec: Mapping[str, Any]) -> str | None:
        """None if ``spec`` fits now, else the reason; a job's own hold counts as free.

        Raises :class:`ResourceError` for unknown keys or bad values.
        """
        demand(self.site, spec, self.total)
        free = self.free_resources()
        own = self._reservations.get(job_id)
        if own is not None and own.expires_at > self._clock():
            free = free.plus(own.amounts)
        return shortfall(self.site, spec, free)

    def reserve(self, job_id: str, spec: Mapping[str, Any], ttl_s: float) -> Reservation:
        """Hold ``spec`` for ``job_id`` until ``clock() + ttl_s`` (replaces its own reservation).

        Raises :class:`ResourceError` if it does not fit or the job is already allocated.
        """
        if job_id in self._allocations:
            raise ResourceError(f"{self.site}: job {job_id} already has an allocation")
        if ttl_s <= 0:
            raise ResourceError(f"{self.site}: reservation ttl must be > 0, got {ttl_s!r}")
        reason = self.check(job_id, spec)
        if reason is not None:
            raise ResourceError(f"cannot reserve for job {job_id}: {reason}")
        res = Reservation(job_id, demand(self.site, spec, self.total), self._clock() + ttl_s)
        self._reservations[job_id] = res
        return res

    def allocate(self, job_id: str) -> Allocation:
        """Turn the job's live reservation into an allocation with concrete GPU indices."""
        res = self._reservations.get(job_id)
        if res is None or res.expires_at <= self._clock():
            raise ResourceError(f"{self.site}: job {job_id} has no live reservation")
        used = {i for a in self._allocations.values() for i in a.gpus}
        idle = [i for i in range(self.total.num_gpus) if i not in used]
        count = int(res.amounts.get(NUM_GPUS, 0))
        if count > len(idle):  # cannot happen while the books balance; refuse rather than share
            raise ResourceError(f"{self.site}: only {len(idle)} GPUs idle, job needs {count}")
        alloc = Allocation(job_id, res.amounts, tuple(idle[:count]))
        del self._reservations[job_id]
        self._allocations[job_id] = alloc
        return alloc

    def free(self, job_id: str) -> None:
        """Release whatever the job holds (reservation or allocation); a no-op if nothing."""
        self._reservations.pop(job_id, None)
        self._allocations.pop(job_id, None)

    def expire(self) -> list[str]:
        """Drop expired reservations; return their job ids."""
        now = self._clock()
        gone = [j for j, r in self._reservations.items() if r.expires_at <= now]
        for job_id in gone:
            del self._reservations[job_id]
        return gone
