"""Personal data in the lake and in what people forward: pseudonyms, redaction, templates."""
