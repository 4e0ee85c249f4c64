"""Notifications: policies, planning in the read-model transaction, the delivery loop, its channels and API."""
