"""The history: past declarations and outcomes, and the as-of answers every feature of a party or route uses."""
