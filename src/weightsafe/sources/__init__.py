"""Where bytes come from: the hub over HTTP, a static mirror, an S3 bucket."""
