"""Sample data the demo deploys (`402claw demo`)."""

from pathlib import Path

CITIES = Path(__file__).with_name("cities.csv")
