"""The federated network (docs/federation.md): a hub that takes a cohort from a
researcher, has every node answer it, and combines their released answers.

- `store`: the hub's own tables (nodes and their token hashes, queries, per-node tasks
  and results), in the hub's store (SQLite by default, PostgreSQL in deployment);
- `hub`: the hub's HTTP API (researchers submit and wait; nodes long-poll for work and
  put their released answers), and `results`: the labelled, combined view of a query;
- `node`: the node agent, an ordinary installation that pulls work from the hub over
  outbound HTTP and answers through the installation's own privacy gate;
- `cli`: `antal hub ...` and `antal node join`; `client`: the researcher's side.

A node never sends anything its own gate did not release; the hub only adds released
values up (antal.privacy.combine).
"""
