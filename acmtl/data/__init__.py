"""Corpora, CoNLL readers, splits and pinyin features."""
