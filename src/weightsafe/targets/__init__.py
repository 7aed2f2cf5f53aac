"""Where verified files go besides the cache: a deploy directory, the Hugging Face cache, a mirror
directory, an S3 prefix."""
