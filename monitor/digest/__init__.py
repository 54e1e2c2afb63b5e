"""Digest emails: composed on a schedule, stored whole, delivered once.

    render.py     alerts in, one multipart email out, from templates/ (pure)
    schedule.py   cron expressions with cron's meaning (pure)
    mailer.py     the only smtplib user
    delivery.py   composes due digests and sends pending ones; owns their transactions
"""
