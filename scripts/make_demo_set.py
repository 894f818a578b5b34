#!/usr/bin/env python3
"""Cut the embedded demo set (datasets/demo/) from Debian's r-bioc-biostrings package.

Source: dm3_upstream2000.fa.gz (Drosophila melanogaster dm3, 2 kb upstream of each RefSeq
transcript, on the transcript's strand, ending at the TSS), shipped by Bioconductor Biostrings,
Artistic-2.0. Reproduce with:

    apt-get download r-bioc-biostrings && dpkg-deb -x r-bioc-biostrings_*.deb x
    python3 scripts/make_demo_set.py x/usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz

Classes: `proximal` = the 300 bp next to the TSS (-300..-1), `distal` = the 300 bp farthest from it
(-2000..-1701). Records with any N are skipped; identical windows (alternative transcripts share
upstream regions) are kept once, and a window seen in both classes is dropped from both. Every
STRIDE-th remaining record is kept, up to PER_CLASS per class. The source is entirely lower case
(it carries no soft-masking information), so sequences are written in upper case.
"""
import gzip
import sys

WINDOW, PER_CLASS, STRIDE = 300, 1000, 7


def records(path):
    name, seq = None, []
    with gzip.open(path, "rt") as f:
        for line in f:
            line = line.strip()
            if line.startswith(">"):
                if name:
                    yield name, "".join(seq)
                name, seq = line[1:].split()[0], []
            elif line:
                seq.append(line)
    if name:
        yield name, "".join(seq)


def main(src, out_dir="datasets/demo"):
    prox, dist = {}, {}
    for name, s in records(src):
        if len(s) != 2000 or "n" in s.lower():
            continue
        s = s.upper()
        prox.setdefault(s[-WINDOW:], (name, s[-WINDOW:]))
        dist.setdefault(s[:WINDOW], (name, s[:WINDOW]))
    both = set(prox) & set(dist)
    for cls, table in (("proximal", prox), ("distal", dist)):
        keep = [v for k, v in table.items() if k not in both][::STRIDE][:PER_CLASS]
        with gzip.GzipFile(f"{out_dir}/{cls}.fa.gz", "wb", mtime=0) as f:
            for name, s in keep:
                f.write(f">{name}_{cls}\n".encode())
                for i in range(0, len(s), 60):
                    f.write((s[i : i + 60] + "\n").encode())
        print(cls, len(keep))


if __name__ == "__main__":
    main(*sys.argv[1:])
