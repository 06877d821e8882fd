"""Text in video: words read from pictures (OCR) and the sentence encoder that makes them searchable."""
