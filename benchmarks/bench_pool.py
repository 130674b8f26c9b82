"""Benchmark: a training step of rosa's small Enformer with enformer-pytorch's `AttentionPool` and with `PairAttentionPool`.

Both models hold the same weights; prints the time per step of each, their ratio, and checks the outputs agree.
Run: python benchmarks/bench_pool.py [batch] [window] [dim] [threads]
"""
import sys, time, copy
import torch
from enformer_pytorch.modeling_enformer import AttentionPool
from rosa.enformer import small_enformer, PairAttentionPool

def step_time(model, x, y, n=10):
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    def step():
        loss = ((model(x, head='human') - y) ** 2).mean(); opt.zero_grad(); loss.backward(); opt.step()
    for _ in range(3): step()
    t = time.perf_counter()
    for _ in range(n): step()
    return (time.perf_counter() - t) / n

if __name__ == '__main__':
    batch, window, dim, threads = [int(a) for a in sys.argv[1:5]] + [32, 1024, 48, 2][len(sys.argv[1:5]):]
    torch.set_num_threads(threads); torch.manual_seed(0)
    fast = small_enformer(8, window=16_384, dim=dim, heads=2, depth=1); fast.set_target_length(2)
    ref = copy.deepcopy(fast)
    for m in ref.modules():
        if type(m) is PairAttentionPool: m.__class__ = AttentionPool
    x = (torch.rand(batch, window, 4) > 0.75).float(); y = torch.rand(batch, 2, 8)
    with torch.no_grad():
        d = (fast.eval()(x, head='human') - ref.eval()(x, head='human')).abs().max().item()
    assert d < 1e-4, f'outputs differ by {d}'
    t_ref, t_fast = step_time(ref.train(), x, y), step_time(fast.train(), x, y)
    print(f'small Enformer (dim {dim}), {batch} x {window} bp, {threads} threads; outputs agree to {d:.1e}')
    print(f'AttentionPool: {t_ref * 1e3:.1f} ms/step   PairAttentionPool: {t_fast * 1e3:.1f} ms/step   speed-up: {t_ref / t_fast:.2f}x')
