"""Scrapy spiders doing crawldex's work on the demo site (bench only: needs Scrapy)."""
