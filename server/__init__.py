"""autolr.server"""
