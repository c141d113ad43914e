"""`sao report`: diversity and judge metrics of a run, as JSON and a self-contained HTML page."""
