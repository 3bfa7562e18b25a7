#!/usr/bin/env python3
"""PyTorch reference for bench/bench_cnn.cpp: LeNet-5 training and inference throughput on the CPU.

Same model (conv 1->6 5x5 pad 2, ReLU, maxpool 2, conv 6->16 5x5, ReLU, maxpool 2, fc 400-120-84-10), batch 128,
SGD with momentum 0.9 and weight decay 5e-4, synthetic 1x28x28 data; one training step = forward, cross-entropy,
backward, optimizer step. Prints the median images/s (wall clock, and per CPU-second of the process, which a loaded
machine disturbs less) over --repetitions runs of --steps steps, for each thread count.

    /usr/bin/python3 bench/pytorch_lenet.py --threads 1 2

Needs Debian's python3-torch (1.13); the C++ benchmark does not.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    batches = 16
    images = torch.rand(batches * args.batch, 1, 28, 28)
    labels = torch.randint(0, 10, (batches * args.batch,))
    print(f"torch {torch.__version__}, batch {args.batch}, {args.steps} steps x {args.repetitions} repetitions")
    for threads in args.threads:
        torch.set_num_threads(threads)
        model = LeNet5()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def train_steps(n):
            for s in range(n):
                b = s % batches
                x = images[b * args.batch:(b + 1) * args.batch]
                y = labels[b * args.batch:(b + 1) * args.batch]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()

        train_steps(5)  # warm-up
        rates, cpu_rates = [], []
        for _ in range(args.repetitions):
            t0, c0 = time.perf_counter(), time.process_time()
            train_steps(args.steps)
            rates.append(args.steps * args.batch / (time.perf_counter() - t0))
            cpu_rates.append(args.steps * args.batch / (time.process_time() - c0))
        train = statistics.median(rates)

        model.eval()
        test = images[:2048]
        with torch.no_grad():
            model(test)
            inf = []
            for _ in range(args.repetitions):
                t0 = time.perf_counter()
                for _ in range(5):
                    model(test)
                inf.append(5 * test.shape[0] / (time.perf_counter() - t0))
        model.train()
        print(f"threads {threads}: training {train:,.0f} images/s ({statistics.median(cpu_rates):,.0f} per CPU-second of "
              f"the process), inference {statistics.median(inf):,.0f} images/s (medians of {args.repetitions})")


if __name__ == "__main__":
    main()
