"""Top Airlines: a live Tinybird dashboard on short-lived JWTs, with Tinybird Local beside it."""
