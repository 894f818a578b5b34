#!/usr/bin/env python3
"""Where the CNNProm E. coli sequences lie in the K-12 genome, and how much they overlap.

Usage: python3 scripts/cnnprom_negatives.py [DATA_DIR]   (default: $GENOLM_DATA, then ../shared/data)

For every record of promoters/cnnprom/Ecoli_prom.fa.gz and Ecoli_non_prom.fa.gz: its exact
position in genomes/ecoli_k12_mg1655 (either strand), and whether it overlaps a CDS on the same
strand, the opposite strand, or none; then, per file, how many records share a 20-mer with
another record of the same file (overlapping windows). Standard library only.
"""
import collections
import glob
import gzip
import os
import sys


def fasta(path):
    name, seq = None, []
    for line in gzip.open(path, "rt"):
        line = line.strip()
        if line.startswith(">"):
            if name is not None:
                yield name, "".join(seq).upper()
            name, seq = line[1:].split()[0], []
        elif line:
            seq.append(line)
    if name is not None:
        yield name, "".join(seq).upper()


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GENOLM_DATA", "../shared/data")
    gdir = os.path.join(data, "genomes/ecoli_k12_mg1655")
    genome = "".join(s for _, s in fasta(os.path.join(gdir, "genome.fna.gz")))
    rc = lambda s: s.translate(str.maketrans("ACGT", "TGCA"))[::-1]
    cds = []
    for line in gzip.open(glob.glob(os.path.join(gdir, "*.gff*"))[0], "rt"):
        f = line.split("\t")
        if not line.startswith("#") and len(f) > 8 and f[2] == "CDS":
            cds.append((int(f[3]), int(f[4]), f[6]))

    def where(s):
        for strand, probe in (("+", s), ("-", rc(s))):
            i = genome.find(probe)
            if i >= 0:
                lo, hi = i + 1, i + len(s)
                hits = {st for a, b, st in cds if a <= hi and b >= lo}
                if not hits:
                    return "intergenic"
                return " + ".join(sorted("same-strand CDS" if st == strand else "opposite-strand CDS" for st in hits))
        return "not found"

    for f in ("Ecoli_prom.fa.gz", "Ecoli_non_prom.fa.gz"):
        recs = [s for _, s in fasta(os.path.join(data, "promoters/cnnprom", f))]
        counts = collections.Counter(where(s) for s in recs)
        k, index = 20, collections.defaultdict(set)
        for i, s in enumerate(recs):
            for j in range(len(s) - k + 1):
                index[s[j:j + k]].add(i)
        shared = sum(
            1 for i, s in enumerate(recs)
            if any(index[s[j:j + k]] - {i} for j in range(len(s) - k + 1))
        )
        print(f"{f}: {len(recs)} records")
        for what, n in counts.most_common():
            print(f"  {what}: {n}")
        print(f"  share a 20-mer with another record of the file: {shared} ({shared / len(recs):.1%})")


if __name__ == "__main__":
    main()
