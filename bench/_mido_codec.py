"""mido's side of bench/codec_compare.ts (not meant to be run by hand).

Usage: python3 bench/_mido_codec.py STREAM_FILE RUNS MIN_RUN_SECONDS

Reads the benchmark stream (raw MIDI bytes, written by codec_compare.ts),
then times, with time.perf_counter:
  parse:  mido.Parser().feed(data), then draining every message from it;
  encode: msg.bytes() for every message of the stream (parsed beforehand).
Each measurement is warmed up once, then repeated RUNS times; a run repeats
the work until it lasts MIN_RUN_SECONDS. Prints one JSON object: seconds per
pass over the stream (best and median), and counts to check against.
"""

import json
import statistics
import sys
import time

import mido


def measure(work, runs, min_seconds):
    work()  # warm-up
    start = time.perf_counter()
    work()
    once = max(time.perf_counter() - start, 1e-9)
    reps = max(1, int(min_seconds / once + 0.5))
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(reps):
            work()
        samples.append((time.perf_counter() - start) / reps)
    return {"best": min(samples), "median": statistics.median(samples),
            "reps": reps}


def main():
    path, runs, min_seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with open(path, "rb") as f:
        data = f.read()

    def parse():
        parser = mido.Parser()
        parser.feed(data)
        return sum(1 for _ in parser)

    messages = list(mido.Parser(data))

    def encode():
        total = 0
        for msg in messages:
            total += len(msg.bytes())
        return total

    result = {
        "mido": mido.__version__,
        "python": sys.version.split()[0],
        "parsed": parse(),
        "encodedBytes": encode(),
        "parse": measure(parse, runs, min_seconds),
        "encode": measure(encode, runs, min_seconds),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
