"""A Tinybird API client: what any Python program needs to read and feed a workspace.

- `errors`: one hierarchy for every failure (`TinybirdError` at the top), as requests does.
- `tokens`: minting the guide's short-lived JWTs and keeping one per session.
- `pipes`: reading API Endpoints with a JWT (`PipeClient`) and listing pipes.
- `events`: sending rows to the Events API without ever counting one twice.
- `settings`: where the workspace is and which token signs, from the environment and .env.

No Streamlit here, and nothing of Tinybird Local: it works the same against the cloud.
"""
