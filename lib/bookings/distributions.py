"""What a flight booking looks like, as plain data: the one source for generated data.

It follows Mockingbird's "Flight Bookings" preset, which the guide uses to fill
`events`: seven fictional airlines with skewed popularity, weighted meal choices and
extra bags, ages 18-99, passport numbers 3456789-9876543. The same weights drive the
Python generator (streamed events) and the SQL that Tinybird Local's seed runs inside
ClickHouse, so bulk and streamed data agree.

The module holds plain data and one SQL builder, nothing else. Tinybird Local imports
it to seed, so it must not import the client, argparse or anything heavy.
"""

from __future__ import annotations

from collections.abc import Sequence

AIRLINES: dict[str, int] = {
    "BrianAir": 20, "Fizz": 5, "EasyPlane": 15, "Skittish Airways": 20, "GAS": 15,
    "Ler Dingus": 10, "Red Balloon": 15,
}
MEAL_CHOICES: dict[str, int] = {
    "none": 60, "vegan": 5, "vegetarian": 10, "halal": 10, "kosher": 10, "gluten": 5,
}
EXTRA_BAGS: dict[int, int] = {0: 45, 1: 35, 2: 10, 3: 4, 4: 2, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1}
AGE_RANGE = (18, 99)
PASSPORT_RANGE = (3456789, 9876543)

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Ava", "Elijah", "Sophia", "Mateo",
    "Isabella", "Lucas", "Mia", "Levi", "Charlotte", "Ezra", "Harper", "Asher", "Evelyn", "Leo",
    "Aisha", "Hiroshi", "Priya", "Chen", "Fatima", "Ingrid", "Kwame", "Lucia", "Mehmet", "Nadia",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Nakamura", "Okafor", "Novak", "Schmidt", "Rossi", "Kowalski",
    "Haddad", "Singh", "Larsen", "Dubois",
)
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "proton.me", "icloud.com")
CITIES = (
    "London", "Paris", "Madrid", "Barcelona", "Rome", "Milan", "Berlin", "Munich", "Amsterdam",
    "Dublin", "Lisbon", "Porto", "Vienna", "Prague", "Budapest", "Warsaw", "Copenhagen",
    "Stockholm", "Oslo", "Helsinki", "Athens", "Istanbul", "Zurich", "Geneva", "Brussels",
    "Edinburgh", "Manchester", "Seville", "Valencia", "Nice", "Lyon", "Hamburg", "Krakow",
    "New York", "Boston", "Chicago", "Toronto", "Montreal", "Miami", "San Francisco",
)

COLUMNS = (
    "age", "airline", "email", "extra_bags", "flight_from", "flight_to", "meal_choice", "name",
    "passport_number", "priority_boarding", "timestamp", "transaction_id",
)


def _sql_list(values: Sequence[object]) -> str:
    """A ClickHouse array literal of ints and quoted strings."""
    return "[" + ",".join(
        str(v) if isinstance(v, int) else "'" + str(v).replace("'", "\\'") + "'" for v in values
    ) + "]"


def _weighted_pick_sql(weights: dict, random_expr: str) -> str:
    """An expression that picks a key of `weights` with their probabilities."""
    keys = list(weights)
    total = sum(weights.values())
    bounds, running = [], 0
    for key in keys:
        running += weights[key]
        bounds.append(running)
    return (f"{_sql_list(keys)}[arrayFirstIndex(b -> ({random_expr}) % {total} < b, "
            f"{_sql_list(bounds)})]")


def seed_select_sql(rows: int, days: float = 30, seed: int = 0) -> str:
    """A SELECT that generates bookings inside ClickHouse.

    The rows are made by the engine, so none of them passes through Python. Each random
    draw hashes the row number, `seed` and a number of its own, so the columns are
    independent of each other.

    Args:
        rows: how many bookings.
        days: the timestamps are spread over the last this many days (a fraction of a
            day for a few seconds, as a live stream wants).
        seed: the same seed gives the same bookings (timestamps aside).

    Returns:
        The SELECT, with the columns of `events`.
    """
    def r(salt: int) -> str:
        return f"cityHash64(number, {seed}, {salt})"

    span_ms = max(1, round(days * 86_400_000))
    first, last = _sql_list(FIRST_NAMES), _sql_list(LAST_NAMES)
    cities = _sql_list(CITIES)
    n_cities = len(CITIES)
    origin = f"({r(6)} % {n_cities}) + 1"
    # A different city for the destination: shift by 1..n-1 places.
    destination = f"((({r(6)} % {n_cities}) + 1 + ({r(7)} % {n_cities - 1})) % {n_cities}) + 1"
    return f"""
SELECT
    toInt16({AGE_RANGE[0]} + {r(1)} % {AGE_RANGE[1] - AGE_RANGE[0] + 1}) AS age,
    {_weighted_pick_sql(AIRLINES, r(2))} AS airline,
    concat(lower(first_name), '.', lower(last_name), toString(1 + {r(3)} % 999), '@',
           {_sql_list(EMAIL_DOMAINS)}[1 + {r(4)} % {len(EMAIL_DOMAINS)}]) AS email,
    toInt16({_weighted_pick_sql(EXTRA_BAGS, r(5))}) AS extra_bags,
    {cities}[{origin}] AS flight_from,
    {cities}[{destination}] AS flight_to,
    {_weighted_pick_sql(MEAL_CHOICES, r(8))} AS meal_choice,
    concat(first_name, ' ', last_name) AS name,
    toInt32({PASSPORT_RANGE[0]} + {r(9)} % {PASSPORT_RANGE[1] - PASSPORT_RANGE[0] + 1})
        AS passport_number,
    toUInt8({r(10)} % 2) AS priority_boarding,
    now64(3, 'UTC') - toIntervalMillisecond({r(11)} % {span_ms}) AS timestamp,
    toString(generateUUIDv4(number)) AS transaction_id
FROM (
    SELECT number,
           {first}[1 + cityHash64(number, {seed}, 12) % {len(FIRST_NAMES)}] AS first_name,
           {last}[1 + cityHash64(number, {seed}, 13) % {len(LAST_NAMES)}] AS last_name
    FROM numbers({int(rows)})
)
"""

