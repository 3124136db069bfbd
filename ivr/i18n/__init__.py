"""(issue in progress)"""
