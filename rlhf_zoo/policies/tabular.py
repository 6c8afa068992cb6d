"""An exact autoregressive tabular policy for the solvable testbed (ALGORITHMS.md §8).

Completions are sequences over ``L = vocab_size − 1`` letters plus an EOS token, at most
``max_len`` tokens long: a completion ends at its first EOS or at the length cap. Every prefix
of letters shorter than ``max_len`` has its own row of logits, so the table can represent *any*
distribution over completions (the optimum π*_β and π_BoN are reachable exactly).

It implements the same :class:`~rlhf_zoo.policies.base.Policy` interface as a language model:
``sample`` produces a right-padded :class:`Rollout` with a response mask, ``logprobs`` gives
per-token (or full-vocabulary) log-probs, and the three roles are three tables:
``policy`` (an ``nn.Parameter``), ``ref`` (a frozen buffer) and ``anchor`` (a buffer copied or
EMA-updated from the policy).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rlhf_zoo.functional.ema import ema_
from rlhf_zoo.functional.kl import chosen_logprobs, exact_token_kl
from rlhf_zoo.policies.base import Generators, Role, Rollout, check_role, per_prompt_generators
from rlhf_zoo.policies.sampling import inverse_cdf, per_prompt_uniforms

LETTERS = "abcdefghijklmnopqrstuvwxyz"


class PrefixTree:
    """Indexes every letter prefix shorter than ``max_len`` and every complete completion."""

    def __init__(self, vocab_size: int, max_len: int):
        if vocab_size < 2 or vocab_size - 1 > len(LETTERS):
            raise ValueError(f"vocab_size must lie in [2, {len(LETTERS) + 1}], got {vocab_size}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.vocab_size = vocab_size
        self.eos = vocab_size - 1
        self.max_len = max_len
        letters = range(vocab_size - 1)
        prefixes = [p for t in range(max_len) for p in itertools.product(letters, repeat=t)]
        self.index = {p: i for i, p in enumerate(prefixes)}
        self.num_prefixes = len(prefixes)
        # children[i, v]: the prefix reached from prefix i by letter v (0 where it would exceed
        # the cap or v is EOS: those positions are never continued).
        children = torch.zeros(self.num_prefixes, vocab_size, dtype=torch.long)
        for p, i in self.index.items():
            for v in letters:
                children[i, v] = self.index.get(p + (v,), 0)
        self.children = children
        completions = [p + (self.eos,) for p in prefixes] + list(itertools.product(letters, repeat=max_len))
        self.completions = completions  # every completion, EOS included where it ends early

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(LETTERS[i] for i in ids if i != self.eos)

    def prefix_path(self, completion_ids: Tensor) -> Tensor:
        """The prefix index at each position of [N, T] completions (position t sees y_<t)."""
        n, t = completion_ids.shape
        out = torch.zeros(n, t, dtype=torch.long, device=completion_ids.device)
        cur = torch.zeros(n, dtype=torch.long, device=completion_ids.device)
        children = self.children.to(completion_ids.device)
        for j in range(t):
            out[:, j] = cur
            tok = completion_ids[:, j].clamp(0, self.vocab_size - 1)
            cur = torch.where(tok == self.eos, cur, children[cur, tok])
        return out

    def completion_tensors(self) -> tuple[Tensor, Tensor]:
        """All completions as right-padded ids [M, max_len] and their response mask."""
        m = len(self.completions)
        ids = torch.full((m, self.max_len), self.eos, dtype=torch.long)
        mask = torch.zeros(m, self.max_len)
        for i, c in enumerate(self.completions):
            ids[i, : len(c)] = torch.tensor(c)
            mask[i, : len(c)] = 1.0
        return ids, mask


class TabularPolicy(nn.Module):
    """π, π_ref and π_anchor as logit tables of shape [num_prompts, num_prefixes, vocab_size]."""

    def __init__(self, prompts: Sequence[str], tree: PrefixTree, ref_logits: Tensor):
        super().__init__()
        expected = (len(prompts), tree.num_prefixes, tree.vocab_size)
        if tuple(ref_logits.shape) != expected:
            raise ValueError(f"ref_logits must have shape {expected}, got {tuple(ref_logits.shape)}")
        self.tree = tree
        self.prompt_index = {p: i for i, p in enumerate(prompts)}
        self.register_buffer("ref_logits", ref_logits.clone())
        self.register_buffer("anchor_logits", ref_logits.clone())
        self.logits = nn.Parameter(ref_logits.clone())  # π starts at π_ref
        self._anchor_version = 0
        self.device = torch.device("cpu")

    # -- Policy interface -------------------------------------------------------------------
    def _table(self, role: Role) -> Tensor:
        check_role(role)
        if role == "policy":
            return self.logits
        if role == "ref":
            return self.ref_logits
        return self.anchor_logits

    def _prompt_ids(self, prompts: Sequence[str]) -> Tensor:
        try:
            return torch.tensor([self.prompt_index[p] for p in prompts], dtype=torch.long)
        except KeyError as e:
            raise ValueError(f"unknown prompt {e.args[0]!r} for this tabular policy") from None

    @torch.no_grad()
    def sample(self, prompts: Sequence[str], n: int, *, role: Role = "policy", generator: Generators = None) -> Rollout:
        """n completions per prompt. With one generator per prompt (what training and evaluation pass),
        prompt i's n × max_len uniforms come from generator i and each token is the inverse CDF of its
        row's distribution at its uniform (:mod:`rlhf_zoo.policies.sampling`, as for a language model),
        so a prompt's completions do not depend on the other prompts of the call. With one generator (or
        None), each position draws all rows with ``torch.multinomial``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        table = self._table(role).detach()
        x = self._prompt_ids(prompts).repeat_interleave(n)
        rows, length, eos = x.shape[0], self.tree.max_len, self.tree.eos
        gens = per_prompt_generators(generator, len(prompts))
        uniforms = per_prompt_uniforms(gens, n, length) if gens is not None else None
        ids = torch.full((rows, length), eos, dtype=torch.long)
        mask = torch.zeros(rows, length)
        logp = torch.zeros(rows, length, dtype=table.dtype)
        prefix = torch.zeros(rows, dtype=torch.long)
        done = torch.zeros(rows, dtype=torch.bool)
        for t in range(length):
            lp = torch.log_softmax(table[x, prefix], dim=-1)
            if uniforms is None:
                tok = torch.multinomial(lp.exp(), 1, generator=generator).squeeze(-1)
            else:
                tok = inverse_cdf(lp.double().exp(), uniforms[:, t])
            active = ~done
            ids[:, t] = torch.where(active, tok, ids[:, t])
            mask[:, t] = active.to(mask.dtype)
            logp[:, t] = torch.where(active, chosen_logprobs(lp, tok), logp[:, t])
            prefix = torch.where(active & (tok != eos), self.tree.children[prefix, tok], prefix)
            done = done | (tok == eos)
        rep = [p for p in prompts for _ in range(n)]
        return Rollout(
            prompts=rep,
            prompt_ids=x[:, None].clone(),
            prompt_mask=torch.ones(rows, 1),
            completion_ids=ids,
            response_mask=mask,
            sample_logp=logp,
            texts=[self.tree.decode(r.tolist()[: int(m.sum())]) for r, m in zip(ids, mask, strict=True)],
            group_size=n,
        )

    def logprobs(self, rollout: Rollout, *, role: Role = "policy", full: bool = False) -> Tensor:
        table = self._table(role)
        ctx = torch.enable_grad() if role == "policy" and torch.is_grad_enabled() else torch.no_grad()
        with ctx:
            if role != "policy":
                table = table.detach()
            x = rollout.prompt_ids[:, 0]
            path = self.tree.prefix_path(rollout.completion_ids)
            lp = torch.log_softmax(table[x[:, None], path], dim=-1)  # [N, T, V]
            if full:
                return lp
            return chosen_logprobs(lp, rollout.completion_ids)

    @torch.no_grad()
    def token_kl(
        self, rollout: Rollout, p_role: Role = "policy", q_role: Role = "ref", *, with_logprobs: bool = False
    ) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Exact-token KL(π_p ‖ π_q) summed over each completion's visited prefixes: [N]; with
        ``with_logprobs`` also both roles' per-token log-probs of the completion tokens ([N, T])."""
        lp = self.logprobs(rollout, role=p_role, full=True)
        lq = self.logprobs(rollout, role=q_role, full=True)
        kl = exact_token_kl(lp, lq, rollout.response_mask)
        if not with_logprobs:
            return kl
        return kl, chosen_logprobs(lp, rollout.completion_ids), chosen_logprobs(lq, rollout.completion_ids)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [self.logits]

    @torch.no_grad()
    def update_anchor(self, eta: float) -> None:
        ema_([self.anchor_logits], [self.logits], eta)
        self._anchor_version += 1

    @property
    def anchor_version(self) -> int:
        return self._anchor_version

    def state_dict(self, *args, **kwargs):  # noqa: D102 - nn.Module signature
        return {
            "logits": self.logits.detach().clone(),
            "anchor_logits": self.anchor_logits.clone(),
            "meta.anchor_version": torch.tensor(self._anchor_version, dtype=torch.long),
        }

    def load_state_dict(self, state, strict: bool = True):  # noqa: D102
        with torch.no_grad():
            self.logits.copy_(state["logits"])
            self.anchor_logits.copy_(state["anchor_logits"])
        self._anchor_version = int(state["meta.anchor_version"])
