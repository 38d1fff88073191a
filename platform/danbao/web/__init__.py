"""danbao.web"""
