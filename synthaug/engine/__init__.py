"""Pure logic with plain inputs and outputs: no ORM, no Django apps imported here.

Django services load rows, call the engine, and store what it returns.
"""
