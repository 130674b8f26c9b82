"""Benchmark: the expression transformer's training step with the 'standard' (full attention) and the 'perceiver'
(latents) encoder, as a cell's context grows.

Prints, for each context length, the time per step of each encoder and their ratio, measured side by side in one run.
Run: python benchmarks/bench_encoder.py [batch_cells] [n_latents] [threads] [contexts...]
"""
import sys, time
import torch
from rosa.transformer import ExpressionTransformer, TransformerConfig

def step_time(model, n_ctx, batch, d_emb=64, n_tgt=64, n=5):
    g = torch.Generator().manual_seed(0)
    ce, cv = torch.randn(batch, n_ctx, d_emb, generator=g), torch.rand(batch, n_ctx, generator=g)
    cb, qe, y = torch.randint(0, 8, (batch, n_ctx), generator=g), torch.randn(batch, n_tgt, d_emb, generator=g), torch.rand(batch, n_tgt, generator=g)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    def step():
        loss = ((model(ce, cv, cb, qe) - y) ** 2).mean(); opt.zero_grad(); loss.backward(); opt.step()
    step()
    t = time.perf_counter()
    for _ in range(n): step()
    return (time.perf_counter() - t) / n

if __name__ == '__main__':
    args = [int(a) for a in sys.argv[1:]]
    batch, n_latents, threads = (args[:3] + [32, 32, 2][len(args[:3]):])
    contexts = args[3:] or [64, 256, 1024, 2048]
    torch.set_num_threads(threads); torch.manual_seed(0)
    models = {enc: ExpressionTransformer(TransformerConfig(d_emb=64, encoder=enc, n_latents=n_latents)).train()
              for enc in ('standard', 'perceiver')}
    print(f'expression transformer (d_model 64, 2 encoder blocks), {batch} cells a step, 64 query genes, '
          f'{n_latents} latents, {threads} threads')
    for n in contexts:
        t = {enc: step_time(m, n, batch) for enc, m in models.items()}
        print(f'context {n:5d} genes   standard {t["standard"] * 1e3:8.1f} ms/step   perceiver {t["perceiver"] * 1e3:7.1f} ms/step'
              f'   speed-up {t["standard"] / t["perceiver"]:5.1f}x')
