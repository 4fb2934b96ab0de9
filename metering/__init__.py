"""Price book, ingestion and provider adapters, rating, rollups, usage queries, anomalies."""
