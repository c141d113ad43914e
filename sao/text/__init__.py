"""Text metrics that the prompt filters (`sao.stages.filters`) and the report (`sao.report`) share.

One set of definitions, so what a filter removes is exactly what the report counts. Below both:
nothing here imports another part of sao.

- `tokens`: ROUGE's words, and the key for exact duplicates;
- `ngrams`: a text's word shingles, a corpus' distinct-n;
- `duplicates`: exact and near-duplicates (MinHash LSH + exact Jaccard), `NearDuplicateIndex`;
- `rouge`: ROUGE-L F1 of two token lists and the bounds that prune pairs;
- `repetition`: the repetition rate of a list (sparse prefix filter);
- `repetition_index`: `RepetitionIndex`, the same rule for texts that arrive one at a time;
- `bleu`: self-BLEU;
- `reasoning`: a reply's reasoning ("<think>…</think>") split from its answer.
"""
