"""Flight bookings as the guide's Mockingbird makes them: the data, the generator, its CLI.

- `distributions`: the weights and value lists as plain data, plus the SQL that draws them
  inside ClickHouse. A leaf: Tinybird Local imports it to seed, and it imports nothing.
- `generator`: `BookingGenerator`, the same draws in Python.
- `cli` (`python -m lib.bookings`): paced, bounded streaming to any Events API through
  `lib.client`. Imports run one way: bookings -> client, never the reverse.
"""
