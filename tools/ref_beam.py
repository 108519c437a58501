#!/usr/bin/python3
"""Independent PyTorch reference for rosa's evaluation decoding (beam search and greedy).

Ports, as literally as a batch of one prompt allows, the two transformers beam searches
that rosa eval implements (src/eval/beam.c), on top of tools/ref_llama.py's float64
forward (recomputed over the whole sequence at every step: no KV cache, so the cache
sharing and reordering of the C code are checked too).

  --rule llm-adapters   transformers 4.28: GenerationMixin.beam_search + BeamSearchScorer +
                        BeamHypotheses.  Read from huggingface/transformers
                        src/transformers/generation/beam_search.py (the 4.28-era file:
                        BeamHypotheses.add scores sum_logprobs / hyp.shape[-1] ** length_penalty,
                        hyp = the whole sequence without the EOS; is_done(best_sum_logprobs,
                        cur_len) compares worst_score >= best_sum_logprobs / cur_len ** lp;
                        finalize adds the open beams, pops the best of sorted(beams) and
                        appends eos_token_id[0] when the hypothesis is shorter than max_length)
                        and generation/utils.py beam_search of that era (log_softmax, +
                        beam_scores, topk(2 * num_beams, sorted=True), process, reorder, stop
                        when beam_scorer.is_done or MaxLengthCriteria).
  --rule hf             transformers >= 4.50: GenerationMixin._beam_search, read from
                        huggingface/transformers src/transformers/generation/utils.py
                        (_get_top_k_continuations, _get_running_beams_for_next_iteration,
                        _update_finished_beams: topk_log_probs / (cur_len + 1 - prompt_len) **
                        lp, _check_early_stop_heuristic, _beam_search_has_unfinished_sequences;
                        beams_to_keep = max(2, 1 + n_eos) * num_beams).  For one prompt the
                        4.50 code and the later per-batch early-stop flag behave the same.
  --rule greedy         argmax until EOS (included) or max_new_tokens.

Both beam rules: length_penalty 1.0 (--length-penalty), early_stopping False, no logits
processors (LLM-Adapters' GenerationConfig sets none that apply to beam search).

Usage:
    ref_beam.py --model DIR --prompts FILE.json --num-beams 4 --max-new-tokens 12 \
                --eos 5,9 [--rule all|llm-adapters|hf|greedy] [--out FILE.json]
FILE.json: {"prompts": [[ids...], ...]}.  Output: {"llm-adapters": [{"ids": [new ids],
"score": s, "steps": n}, ...], "hf": [...], "greedy": [...]} (the rules asked for), "ids"
being the new ids exactly as transformers' generate returns them after the prompt, "score"
the returned hypothesis' score (greedy: the sum of log-probabilities) and "steps" the
decoding steps run (fewer than --max-new-tokens when the search stopped early).
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_llama  # noqa: E402

DT = torch.float64


def next_logits(m, seqs):
    """Logits of the last position of each sequence ([N][T] equal lengths) -> [N, V] float64."""
    return ref_llama.forward(m, seqs)[:, -1, :]


# ---------------------------------------------------------------- transformers 4.28


class BeamHypotheses:
    """transformers 4.28 generation/beam_search.py BeamHypotheses (early_stopping bool)."""

    def __init__(self, num_beams, length_penalty, early_stopping):
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.num_beams = num_beams
        self.beams = []
        self.worst_score = 1e9

    def __len__(self):
        return len(self.beams)

    def add(self, hyp, sum_logprobs):
        score = sum_logprobs / (hyp.shape[-1] ** self.length_penalty)
        if len(self) < self.num_beams or score > self.worst_score:
            self.beams.append((score, hyp))
            if len(self) > self.num_beams:
                sorted_next_scores = sorted([(s, idx) for idx, (s, _) in enumerate(self.beams)])
                del self.beams[sorted_next_scores[0][1]]
                self.worst_score = sorted_next_scores[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs, cur_len):
        if len(self) < self.num_beams:
            return False
        if self.early_stopping is True:
            return True
        highest_attainable_score = best_sum_logprobs / cur_len ** self.length_penalty
        return self.worst_score >= highest_attainable_score


class BeamSearchScorer:
    """transformers 4.28 BeamSearchScorer.process / finalize for batch_size 1, one group."""

    def __init__(self, num_beams, length_penalty=1.0, do_early_stopping=False):
        self.num_beams = num_beams
        self.group_size = num_beams
        self.hyp = BeamHypotheses(num_beams, length_penalty, do_early_stopping)
        self.done = False

    def process(self, input_ids, next_scores, next_tokens, next_indices, eos_token_id):
        cur_len = input_ids.shape[-1]
        next_beam_scores = torch.zeros((self.group_size,), dtype=next_scores.dtype)
        next_beam_tokens = torch.zeros((self.group_size,), dtype=next_tokens.dtype)
        next_beam_indices = torch.zeros((self.group_size,), dtype=next_indices.dtype)
        if self.done:
            raise RuntimeError("process() after done: the loop should have stopped (batch of one)")
        beam_idx = 0
        for beam_token_rank, (next_token, next_score, next_index) in enumerate(
                zip(next_tokens[0], next_scores[0], next_indices[0])):
            batch_beam_idx = next_index
            if (eos_token_id is not None) and (next_token.item() in eos_token_id):
                if beam_token_rank >= self.group_size:
                    continue
                self.hyp.add(input_ids[batch_beam_idx].clone(), next_score.item())
            else:
                next_beam_scores[beam_idx] = next_score
                next_beam_tokens[beam_idx] = next_token
                next_beam_indices[beam_idx] = batch_beam_idx
                beam_idx += 1
            if beam_idx == self.group_size:
                break
        if beam_idx < self.group_size:
            raise ValueError("too many EOS candidates")
        self.done = self.done or self.hyp.is_done(next_scores[0].max().item(), cur_len)
        return next_beam_scores, next_beam_tokens, next_beam_indices

    def finalize(self, input_ids, final_beam_scores, max_length, eos_token_id):
        if not self.done:
            for beam_id in range(self.num_beams):
                self.hyp.add(input_ids[beam_id], final_beam_scores[beam_id].item())
        sorted_hyps = sorted(self.hyp.beams, key=lambda x: x[0])
        best_score, best_hyp = sorted_hyps.pop()
        sent_len = len(best_hyp)
        sent_max_len = min(sent_len + 1, max_length)
        decoded = torch.zeros(sent_max_len, dtype=torch.long)
        decoded[:sent_len] = best_hyp
        if sent_len < sent_max_len:
            decoded[sent_len] = eos_token_id[0]
        return decoded, best_score


def beam_search_428(m, prompt, num_beams, max_new_tokens, eos, length_penalty=1.0):
    """GenerationMixin.beam_search (4.28) for one prompt expanded to num_beams rows."""
    input_ids = torch.tensor([prompt] * num_beams, dtype=torch.long)
    max_length = len(prompt) + max_new_tokens
    scorer = BeamSearchScorer(num_beams, length_penalty, False)
    beam_scores = torch.zeros((1, num_beams), dtype=DT)
    beam_scores[:, 1:] = -1e9
    beam_scores = beam_scores.view((num_beams,))
    while True:
        next_token_logits = next_logits(m, input_ids.tolist())
        next_token_scores = torch.nn.functional.log_softmax(next_token_logits, dim=-1)
        next_token_scores = next_token_scores + beam_scores[:, None].expand_as(next_token_scores)
        vocab_size = next_token_scores.shape[-1]
        next_token_scores = next_token_scores.view(1, num_beams * vocab_size)
        next_token_scores, next_tokens = torch.topk(next_token_scores, 2 * num_beams, dim=1, largest=True,
                                                    sorted=True)
        next_indices = torch.div(next_tokens, vocab_size, rounding_mode="floor")
        next_tokens = next_tokens % vocab_size
        beam_scores, beam_next_tokens, beam_idx = scorer.process(input_ids, next_token_scores, next_tokens,
                                                                 next_indices, eos)
        input_ids = torch.cat([input_ids[beam_idx, :], beam_next_tokens.unsqueeze(-1)], dim=-1)
        if scorer.done or input_ids.shape[-1] >= max_length:  # MaxLengthCriteria
            break
    seq, score = scorer.finalize(input_ids, beam_scores, max_length, eos)
    return seq[len(prompt):].tolist(), float(score), input_ids.shape[-1] - len(prompt)


# ---------------------------------------------------------------- transformers >= 4.50


def _gather_beams(tensor, beam_indices):
    while len(beam_indices.shape) < len(tensor.shape):
        beam_indices = beam_indices.unsqueeze(-1)
    return torch.take_along_dim(input=tensor, indices=beam_indices, dim=1)


def beam_search_450(m, prompt, num_beams, max_new_tokens, eos, length_penalty=1.0):
    """GenerationMixin._beam_search (>= 4.50, early_stopping False, greedy) for batch_size 1."""
    early_stopping = False
    batch_size = 1
    cur_len = len(prompt)
    max_length = cur_len + max_new_tokens
    decoder_prompt_len = cur_len
    eos_token_id = torch.tensor(eos, dtype=torch.long)
    n_eos_tokens = eos_token_id.shape[0]
    beams_to_keep = max(2, 1 + n_eos_tokens) * num_beams
    top_num_beam_mask = torch.cat((torch.ones((num_beams), dtype=torch.bool),
                                   torch.zeros((beams_to_keep - num_beams), dtype=torch.bool)), dim=0)
    output_fill_value = eos[0]
    running_sequences = torch.full((batch_size, num_beams, max_length), fill_value=output_fill_value,
                                   dtype=torch.int64)
    running_sequences[:, :, :cur_len] = torch.tensor(prompt, dtype=torch.long)
    sequences = running_sequences.detach().clone()
    running_beam_scores = torch.zeros((batch_size, num_beams), dtype=DT)
    running_beam_scores[:, 1:] = -1e9
    beam_scores = torch.full((batch_size, num_beams), fill_value=-1e9, dtype=DT)
    is_sent_finished = torch.zeros((batch_size, num_beams), dtype=torch.bool)
    is_early_stop_heuristic_unsatisfied = torch.ones((batch_size, 1), dtype=torch.bool)
    running_beam_indices = torch.full((batch_size, num_beams, max_length - cur_len), fill_value=-1,
                                      dtype=torch.int32)
    beam_indices = running_beam_indices.detach().clone()
    this_peer_finished = False
    while not this_peer_finished:
        flat = running_sequences[:, :, :cur_len].reshape(batch_size * num_beams, cur_len)
        logits = next_logits(m, flat.tolist())
        log_probs = torch.nn.functional.log_softmax(logits, dim=-1)
        vocab_size = log_probs.shape[-1]
        log_probs = log_probs.reshape(batch_size, num_beams, vocab_size)
        log_probs = log_probs + running_beam_scores[:, :, None]
        log_probs = torch.reshape(log_probs, (batch_size, num_beams * vocab_size))

        # _get_top_k_continuations (greedy)
        topk_log_probs, topk_indices = torch.topk(log_probs, k=beams_to_keep)
        topk_current_beam_indices = topk_indices // vocab_size
        topk_running_beam_indices = _gather_beams(running_beam_indices, topk_current_beam_indices)
        topk_running_sequences = _gather_beams(running_sequences, topk_current_beam_indices)
        topk_ids = topk_indices % vocab_size
        topk_running_sequences[:, :, cur_len] = topk_ids
        batch_offset = torch.arange(batch_size).view(-1, 1) * num_beams
        topk_running_beam_indices[:, :, cur_len - decoder_prompt_len] = (topk_current_beam_indices
                                                                         + batch_offset).to(torch.int32)

        # stopping criteria on the candidates: MaxLengthCriteria, EosTokenCriteria
        seqs = topk_running_sequences[:, :, :cur_len + 1]
        hits_max = torch.full((batch_size, beams_to_keep), seqs.shape[-1] >= max_length)
        hits_eos = torch.isin(seqs[:, :, -1], eos_token_id)
        next_token_hits_stopping_criteria = hits_max | hits_eos

        # _get_running_beams_for_next_iteration
        topk_running_log_probs = topk_log_probs + next_token_hits_stopping_criteria.to(DT) * -1.0e9
        next_topk_indices = torch.topk(topk_running_log_probs, k=num_beams)[1]
        running_sequences = _gather_beams(topk_running_sequences, next_topk_indices)
        running_beam_scores = _gather_beams(topk_running_log_probs, next_topk_indices)
        running_beam_indices = _gather_beams(topk_running_beam_indices, next_topk_indices)

        # _update_finished_beams
        did_top_num_beams_just_finished = next_token_hits_stopping_criteria & top_num_beam_mask[None, :]
        tlp = topk_log_probs / ((cur_len + 1 - decoder_prompt_len) ** length_penalty)
        beams_in_batch_are_full = torch.all(is_sent_finished, axis=-1, keepdims=True) & (early_stopping is True)
        tlp = tlp + beams_in_batch_are_full.to(DT) * -1.0e9
        tlp = tlp + (~is_early_stop_heuristic_unsatisfied).to(DT) * -1.0e9
        tlp = tlp + (~did_top_num_beams_just_finished).to(DT) * -1.0e9
        merged_sequences = torch.cat((sequences, topk_running_sequences), dim=1)
        merged_scores = torch.cat((beam_scores, tlp), dim=1)
        merged_beam_indices = torch.cat((beam_indices, topk_running_beam_indices), dim=1)
        merged_is_sent_finished = torch.cat((is_sent_finished, did_top_num_beams_just_finished), dim=1)
        topk_merged_indices = torch.topk(merged_scores, k=num_beams)[1]
        sequences = _gather_beams(merged_sequences, topk_merged_indices)
        beam_scores = _gather_beams(merged_scores, topk_merged_indices)
        beam_indices = _gather_beams(merged_beam_indices, topk_merged_indices)
        is_sent_finished = _gather_beams(merged_is_sent_finished, topk_merged_indices)

        cur_len = cur_len + 1
        # _check_early_stop_heuristic (early_stopping False)
        best_hypothetical_length = cur_len - decoder_prompt_len
        best_possible_running_score = running_beam_scores[:, :1] / (best_hypothetical_length ** length_penalty)
        worst_finished_score = torch.where(is_sent_finished, torch.min(beam_scores, dim=1, keepdim=True)[0],
                                           torch.tensor(-1.0e9, dtype=DT))
        is_early_stop_heuristic_unsatisfied = is_early_stop_heuristic_unsatisfied & torch.any(
            best_possible_running_score > worst_finished_score, dim=-1, keepdim=True)
        # _beam_search_has_unfinished_sequences
        improvement_possible = torch.any(is_early_stop_heuristic_unsatisfied)
        exists_open_beam = ~(torch.all(is_sent_finished) & (early_stopping is True))
        valid_continuations = ~torch.all(next_token_hits_stopping_criteria)
        this_peer_finished = not bool(improvement_possible & exists_open_beam & valid_continuations)

    sequences = sequences[:, :1, :].reshape(1, -1)
    beam_scores = beam_scores[:, :1].reshape(1)
    beam_indices = beam_indices[:, :1, :].reshape(1, -1)
    max_generated_length = int(((beam_indices + 1).bool()).sum(dim=1).max())
    output_length = decoder_prompt_len + max_generated_length
    return (sequences[0, decoder_prompt_len:output_length].tolist(), float(beam_scores[0]),
            cur_len - decoder_prompt_len)


# ---------------------------------------------------------------- greedy


def greedy(m, prompt, max_new_tokens, eos):
    seq = list(prompt)
    total = 0.0
    out = []
    for _ in range(max_new_tokens):
        lg = next_logits(m, [seq])[0]
        lp = torch.log_softmax(lg, dim=-1)
        t = int(torch.argmax(lg))
        total += float(lp[t])
        out.append(t)
        seq.append(t)
        if t in eos:
            break
    return out, total, len(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True, help='JSON file {"prompts": [[ids], ...]}')
    ap.add_argument("--num-beams", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--length-penalty", type=float, default=1.0)
    ap.add_argument("--eos", required=True, help="comma-separated EOS ids")
    ap.add_argument("--rule", default="all", choices=["all", "llm-adapters", "hf", "greedy"])
    ap.add_argument("--out", help="output JSON file (default stdout)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    m = ref_llama.load_model(a.model)
    with open(a.prompts) as f:
        prompts = json.load(f)["prompts"]
    eos = [int(t) for t in a.eos.split(",") if t.strip()]
    rules = ["llm-adapters", "hf", "greedy"] if a.rule == "all" else [a.rule]
    out = {}
    for r in rules:
        res = []
        for p in prompts:
            if r == "llm-adapters":
                ids, score, steps = beam_search_428(m, p, a.num_beams, a.max_new_tokens, eos, a.length_penalty)
            elif r == "hf":
                ids, score, steps = beam_search_450(m, p, a.num_beams, a.max_new_tokens, eos, a.length_penalty)
            else:
                ids, score, steps = greedy(m, p, a.max_new_tokens, eos)
            res.append({"ids": ids, "score": score, "steps": steps})
        out[r] = res
    text = json.dumps(out)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
